"""The ``eval`` commands: measure a model (recognition, regions) or the recommender."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import Context, fail
from jewelsearch.cli.inputs import hand_boxes
from jewelsearch.cli.instance import eval_retrieval
from jewelsearch.cli.one_vector import eval_one_vector


@click.group("eval")
def eval_group():
    """Measure a model (recognition, retrieval, robustness) or the recommender."""


@eval_group.command("model")
@click.option("--shared", "shared_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Root of the real photo sets: evaluates products/val, held-out gemstones, worn.")
@click.option("--folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of class subfolders.")
@click.option("--attribute", default="category", show_default=True,
              type=click.Choice(["category", "metal", "gemstone", "cut"]),
              help="What the --folder class names are.")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV with path plus category/metal/gemstone/cut (and optional group) columns.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/eval"),
              show_default=True)
@click.option("--robustness/--no-robustness", default=True, show_default=True)
@click.pass_obj
def eval_model(obj: Context, shared_root, folder, attribute, csv_path, out, robustness):
    """Evaluate the loaded model; writes eval.json and report.html."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.model_folder import resolve_model_folder
    from jewelsearch.evaluate.recognition import evaluate, robustness_drops, worst_drop_intervals
    from jewelsearch.evaluate.report import write_report
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.train.labelled_data import evaluation_sets
    from jewelsearch.train.worn_folds import WornFolds, judge_by_fold
    sets = evaluation_sets(shared_root=shared_root, folder=folder, attribute=attribute, csv_path=csv_path,
                           model_folder=resolve_model_folder(obj.settings.model))
    if not sets:
        fail("give --shared, --folder or --csv with labelled photos")
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    recognizer = load_recognizer(encoder)
    heads = recognizer.heads
    # Worn photos whose product the shipped heads trained on are judged by the fold heads that did not.
    judge = judge_by_fold(WornFolds.load(encoder.folder, heads), heads)
    total = sum(len(v) for v in sets.values()) * (7 if robustness else 1)
    with tqdm(total=total, unit="img", disable=None) as bar:
        report = evaluate(recognizer, sets, robustness=robustness, progress=bar.update, judge=judge)
    if robustness:
        report["worst_drop_points"] = robustness_drops(report)
        report["worst_drop_intervals"] = worst_drop_intervals(report)
    page = write_report(report, out)
    click.echo(f"report: {page}")
    _print_model_report(report, robustness)


def _print_model_report(report: dict, robustness: bool) -> None:
    for name, result in report["sets"].items():
        for key, value in result.items():
            if isinstance(value, dict) and "accuracy" in value:
                click.echo(f"{name:>14} {key:<22} acc {value['accuracy']:.3f}  top5 {value['top5']:.3f}  "
                           f"macroF1 {value['macro_f1']:.3f}  ECE {value['ece']:.3f}  (n={value['n']})")
            elif key in ("image_retrieval", "same_product"):
                click.echo(f"{name:>14} {key:<22} {json.dumps(value)}")
            elif key == "text_retrieval":
                for q, v in value.items():
                    click.echo(f"{name:>14} text→image {q:<12} recall@10 {v['recall@10']:.3f}  "
                               f"MRR {v['mrr']:.3f}  ({v['queries']} queries)")
    if robustness:
        worst = max(report["worst_drop_points"].items(), key=lambda kv: kv[1])
        interval = report["worst_drop_intervals"].get(worst[0])
        click.echo(f"largest drop under one degradation: {worst[0]} {worst[1]:.1f} points"
                   + (f" (95 % interval over the photos {interval[0]:.1f} to {interval[1]:.1f})" if interval else ""))


@eval_group.command("regions")
@click.option("--worn", "worn_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A worn/ folder with labels.csv (path, category, metal, product).")
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Optional hand-drawn boxes: CSV with path, x0, y0, x1, y1 (one row per piece).")
@click.option("--catalog", "catalog_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Optional products/ folder: its val photos become a clean catalog, and pieces cut from them "
                   "are pasted onto the judged worn photos as shopper photos with a known answer.")
@click.option("--shopper-photos", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/eval/regions.json"),
              show_default=True)
@click.pass_obj
def eval_regions(obj: Context, worn_root, boxes_csv, catalog_root, shopper_photos, out):
    """Whole-photo vs. detected-piece search and recognition on worn photos, side by side."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.images import IMAGE_SUFFIXES, load_image_file
    from jewelsearch.evaluate.regions import evaluate_regions
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_worn, unseen_worn, worn_products_seen
    from jewelsearch.train.worn_folds import WornFolds, judge_by_fold
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    localizer = Localizer.load(encoder, encoder.folder)
    if localizer is None:
        fail("this model has no localiser (train one with `jewelsearch train localizer`)")
    hand = hand_boxes(boxes_csv) if boxes_csv else None
    heads = AttributeHeads.load(encoder.folder)
    # Judge only on worn products the localiser and the heads never trained on.
    records = unseen_worn(read_worn(worn_root), worn_products_seen(encoder.folder))
    judge = judge_by_fold(WornFolds.load(encoder.folder, heads), heads)
    recognizer = load_recognizer(encoder, gem_specialist=False)
    report = evaluate_regions(recognizer, localizer, records, hand, judge=judge)
    report["localizer"] = dict(localizer.config.get("held_out") or {})
    if localizer.stone_branch is not None and "stone_mask_iou" in report["localizer"]:
        # The training-time figure is the head's stone map, which a stone branch replaced;
        # tools/stone_iou.py judges both on the same held-out composites.
        report["localizer"]["stone_mask_iou_of_the_head"] = report["localizer"].pop("stone_mask_iou")
        report["localizer"]["stone_map"] = "stone branch (train stone-branch): see tools/stone_iou.py"
    if catalog_root is not None:
        from jewelsearch.evaluate.shopper import evaluate_shopper_photos
        catalog = sorted(p for p in (Path(catalog_root) / "val").glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not catalog:
            fail(f"{catalog_root}/val holds no photos")
        scenery = [load_image_file(r.path).image for r in records]
        try:
            report["shopper_photos"] = evaluate_shopper_photos(encoder, localizer, catalog, scenery,
                                                               count=shopper_photos)
        except ValueError as exc:
            fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report, indent=2))


@eval_group.command("recommend")
@click.option("--users", default=400, show_default=True, type=click.IntRange(20, 100_000))
@click.option("--seed", default=1, show_default=True, help="Population that is reported.")
@click.option("--tune-seed", default=1001, show_default=True,
              help="First of the two separate populations the weights are tuned on (this seed and the next).")
@click.option("--no-tune", is_flag=True,
              help="Judge the configured blend weights (the defaults, or [blend] in the home's jewelsearch.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/recommend"),
              show_default=True)
@click.option("--shoppers-from", type=click.Choice(["catalog", "given", "looks"]), default="catalog", show_default=True,
              help="What the simulated shoppers' tastes are drawn from: the catalog as served; only the fields "
                   "it was given (not those recognition filled in), so that two models meet the same shoppers; "
                   "or looks: clusters of look-alike pieces in the image-embedding space, across category and metal.")
@click.option("--search", "search", multiple=True, metavar="WEIGHT",
              help="Tune only these blend weights (repeatable), the others kept as configured; default: all.")
@click.pass_obj
def eval_recommend(obj: Context, users, seed, tune_seed, no_tune, out, shoppers_from, search):
    """Simulated shoppers on the current catalog: blended recommender vs baselines."""
    from jewelsearch.evaluate.recommend import SEARCH_SPACE, run
    from jewelsearch.evaluate.recommend_report import write_recommend_report
    unknown = sorted(set(search) - set(SEARCH_SPACE))
    if unknown:
        fail(f"unknown blend weight(s) for --search: {', '.join(unknown)}; expected some of {', '.join(SEARCH_SPACE)}")
    if search and no_tune:
        fail("--search chooses what tuning searches; it cannot go with --no-tune")
    service = obj.service
    items = service.catalog.items.list(limit=10**9)
    if len(items) < 50:
        fail("the catalog needs at least 50 items; load one first (e.g. `jewelsearch demo`)")
    ids, vectors = service.catalog.embeddings.all_for_model(service.encoder.model_id)
    lookup = {int(i): v for i, v in zip(ids, vectors)}
    # Untuned, the weights judged are the ones the server uses: the defaults or the home's [blend].
    report = run(service.index, lookup, items, users=users, seed=seed, tune_seed=tune_seed,
                 weights=service.blend_weights if no_tune or search else None, search=search or None,
                 do_tune=not no_tune, shoppers_from=shoppers_from)
    path = write_recommend_report(report, out)
    click.echo(f"report: {path}")
    click.echo(f"{'method':<26} {'HR@10':>6} {'NDCG@10':>8} {'cover':>6} {'divers':>7} {'NDCG multi':>10}")
    for name, r in report["results"].items():
        click.echo(f"{name:<26} {r['hr@10']:>6.3f} {r['ndcg@10']:>8.3f} {r['coverage']:>6.3f} "
                   f"{r['diversity']:>7.3f} {r['multi_taste_ndcg@10']:>10.3f}")
    others = ", ".join(f"seed {r['seed']} {100 * r['ndcg_gain_over_best_baseline']:+.1f}%"
                       for r in report["replicates"])
    click.echo(f"NDCG@10 gain over the best baseline ({report['best_baseline']}): "
               f"{100 * report['ndcg_gain_over_best_baseline']:+.1f}%; other populations: {others}; "
               f"mean {100 * report['mean_ndcg_gain_over_best_baseline']:+.1f}%")
    pooled = report["pooled"]
    low, high = pooled["ndcg_gain_interval"]
    click.echo(f"pooled over seeds {pooled['seeds']} ({pooled['users']} shoppers) vs {pooled['best_baseline']}: "
               f"{100 * pooled['ndcg_gain_over_best_baseline']:+.1f}% (95% interval {100 * low:+.1f}% to "
               f"{100 * high:+.1f}%); smallest coverage margin over content-only "
               f"{pooled['smallest_coverage_vs_content']:+.3f}")


@eval_group.command("search")
@click.option("--catalog", "source", default="demo", show_default=True,
              help="'demo', 'products' (../shared/data/products), or a folder with items.jsonl, "
                   "studio labels.jsonl or products labels.csv.")
@click.option("--photos-only", is_flag=True, help="Ingest the images with no metadata (recognition fills it).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--limit", type=click.IntRange(1), default=None, help="Use at most this many rendered pieces.")
@click.option("--seed", default=0, show_default=True, help="Seeds the query sampling and phrasings.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/search"),
              show_default=True)
@click.option("--keep-home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Build the evaluation catalog here instead of a temporary home (must not exist yet).")
@click.pass_obj
def eval_search(obj: Context, source, photos_only, k, limit, seed, out, keep_home):
    """Text-search quality on a labelled catalog (EN + ZH queries) in a fresh home."""
    import tempfile

    from jewelsearch.evaluate.search_catalogs import load_catalog
    from jewelsearch.evaluate.search_report import write_search_report
    from jewelsearch.evaluate.search_run import evaluate_search
    from jewelsearch.search.wiring import open_service
    try:
        catalog = load_catalog(source, limit=limit)
    except FileNotFoundError as exc:
        fail(str(exc))
    if keep_home is not None and keep_home.exists():
        fail(f"{keep_home} exists; give a new folder so the evaluation starts from an empty catalog")
    with tempfile.TemporaryDirectory(prefix="jewelsearch-eval-search-") as scratch:
        home = keep_home or Path(scratch) / "home"
        service = open_service(obj.settings.with_overrides(home=home))
        with tqdm(unit="step", disable=None) as bar:
            report = evaluate_search(service, catalog, photos_only=photos_only, k=k, seed=seed,
                                     progress=bar.update)
        service.catalog.close()
    path = write_search_report(report, out)
    click.echo(f"report: {path}")
    for group, splits in report["engine"]["summary"].items():
        cell, bm25 = splits["all"], report["bm25_titles"]["summary"][group]["all"]
        click.echo(f"{group:<18} n={cell['n']:<4} R-prec@10 {cell['r_precision']['mean']:.2f}  "
                   f"nDCG@10 {cell['ndcg_at_10']['mean']:.2f}  MRR {cell['mrr']['mean']:.2f}  "
                   f"(BM25 titles R-prec {bm25['r_precision']['mean']:.2f})")


eval_group.add_command(eval_retrieval)
eval_group.add_command(eval_one_vector)
