"""Instance retrieval from the command line: ``train instance-head`` and ``eval retrieval``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import Context, fail

_folder_option = click.Path(exists=True, file_okay=False, path_type=Path)
LOCAL_WEIGHTS = (0.25, 0.5, 1.0)  # the blend weights the rule fixed before the run compares


@click.command("instance-head")
@click.option("--products", type=_folder_option, required=True,
              help="products/ folder (labels.csv); its train split is used.")
@click.option("--worn", "worn_root", type=_folder_option, required=True,
              help="worn/ folder; only products the model folder already trained on are used.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_instance_head(obj: Context, products, worn_root, epochs, seed):
    """Fit the instance head (the second, "find this exact piece" vector) into the model folder."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import instance_vectors
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train import instance_head
    from jewelsearch.train.labelled_data import read_products, read_worn, worn_products_seen
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    if encoder.folder is None:
        fail("the instance head is saved into a model folder: pass one with --model")
    recipe = instance_head.InstanceRecipe(epochs=epochs, seed=seed)
    seen = worn_products_seen(encoder.folder)
    worn = [r for r in read_worn(worn_root) if r.group in seen]
    catalog = [r for r in read_products(products) if r.split == "train"]
    if not worn or not catalog:
        fail("need the products train split and worn photos of products this model already trained on")
    raw = instance_head.raw_head(recipe)
    try:
        views = instance_head.build_views(encoder, Localizer.load(encoder, encoder.folder), catalog, worn, recipe,
                                          lambda images: instance_vectors(encoder, raw, images))
    except ValueError as exc:
        fail(str(exc))
    mean, projection = instance_head.fit_projection(views, recipe)
    summary = {"trained": datetime.date.today().isoformat(), "catalog_photos": len(views.clean),
               "pasted_pieces": len(views.pasted), "worn_photos": len(worn),
               "worn_products_seen": sorted({r.group for r in worn}), "recipe": {
                   k: v for k, v in vars(recipe).items() if k != "blocks"}}
    head = instance_head.save_head(encoder.folder, mean, projection, recipe, summary)
    click.echo(f"instance head {head.space_id} ({head.dim} dims) written to {encoder.folder}; "
               "run `jewelsearch index rebuild` on catalogs that use this model")


@click.command("retrieval")
@click.option("--worn", "worn_root", type=_folder_option, required=True,
              help="worn/ folder (labels.csv with product); products the model trained on are left out.")
@click.option("--catalog", "catalog_root", type=_folder_option, required=True,
              help="products/ folder: its val photos are the clean catalog.")
@click.option("--pasted", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="Pasted shopper photos to build.")
@click.option("--renders", "render_specs", default=100, show_default=True, type=click.IntRange(0, 10_000),
              help="Held-out studio specs rendered for render-to-render retrieval (0: none).")
@click.option("--render-views", default=3, show_default=True, type=click.IntRange(2, 10),
              help="Set-ups per spec: view 0 queries, the others are the gallery.")
@click.option("--render-size", default=224, show_default=True, type=click.IntRange(64, 1024))
@click.option("--render-spp", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--render-cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/retrieval-renders"), show_default=True,
              help="Where renders are kept between runs (regenerated from the seeds when missing).")
@click.option("--local-check/--no-local-check", default=True, show_default=True,
              help="Also judge the local-feature check over the shipped vector's top candidates.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/retrieval"),
              show_default=True)
@click.pass_obj
def eval_retrieval(obj: Context, worn_root, catalog_root, pasted, render_specs, render_views, render_size,
                   render_spp, render_cache, local_check, out):
    """Find-this-piece retrieval: text-aligned vs. instance vectors, whole / piece / multi-crop
    queries, with and without re-ranking; worn photos, pasted shopper photos and held-out
    studio renders."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead, instance_vectors
    from jewelsearch.evaluate.retrieval_report import write_retrieval_report
    from jewelsearch.evaluate.retrieval_renders import RenderSetPlan
    from jewelsearch.evaluate.retrieval_run import judge, remembered
    from jewelsearch.index.rerank import alpha_query_expansion, k_reciprocal
    plan = None
    if render_specs:  # checked before the model loads: a bad plan fails at once
        try:
            plan = RenderSetPlan(render_specs, render_views, render_size, render_spp)
        except ValueError as exc:
            fail(str(exc))
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    sets, _ = retrieval_sets(encoder, worn_root, catalog_root, pasted, plan, render_cache)
    visual = encoder.model.visual
    head = InstanceHead.load(encoder.folder, visual)
    descriptors = {"text-aligned": encoder.encode_images}
    if head is not None:
        default = InstanceHead.default()
        descriptors["instance, untrained (GeM of the last map)"] = lambda ims: instance_vectors(encoder, default, ims)
        if head.aligned_weight:
            alone = InstanceHead(head.blocks, head.p, head.mean, head.projection)
            descriptors["instance part alone (no aligned part)"] = lambda ims: instance_vectors(encoder, alone, ims)
        descriptors[f"instance ({head.space_id})"] = remembered(lambda ims: instance_vectors(encoder, head, ims))
    results = {}
    for name, embed in descriptors.items():
        click.echo(f"judging {name}")
        results[name] = judge(sets, embed)
    if head is not None:
        rerankers = {"aQE": lambda q, c, s: alpha_query_expansion(q, c, s),
                     "k-reciprocal": lambda q, c, s: k_reciprocal(q, c)}
        best = descriptors[f"instance ({head.space_id})"]
        for name, rerank in rerankers.items():
            click.echo(f"judging instance + {name}")
            results[f"instance + {name}"] = judge(sets, best, modes=("multi",), rerank=rerank)
    report = {"model": encoder.model_id, "sets": sets.describe(), "results": results}
    if head is not None and local_check:
        _judge_local_check(encoder, sets, descriptors[f"instance ({head.space_id})"], results, report)
    path = write_retrieval_report(report, out)
    click.echo(path.read_text())
    click.echo(json.dumps(sets.describe()))


def retrieval_sets(encoder, worn_root: Path, catalog_root: Path, pasted: int, plan, render_cache: Path):
    """(sets, catalog) that retrieval evaluations judge: worn photos of products the model never
    saw, pasted shopper photos, products/val, and the held-out renders where ``plan`` is given."""
    from jewelsearch.evaluate.retrieval_run import build_sets
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_products, read_worn, unseen_worn, worn_products_seen
    worn = unseen_worn(read_worn(worn_root), worn_products_seen(encoder.folder))
    catalog = [r for r in read_products(catalog_root) if r.split == "val"]
    localizer = Localizer.load(encoder, encoder.folder)
    try:
        sets = build_sets(worn, catalog, localizer, pasted=pasted)
    except ValueError as exc:
        fail(str(exc))
    if plan is not None:
        _add_renders(sets, localizer, plan, render_cache)
    return sets, catalog


def _add_renders(sets, localizer, plan, cache: Path) -> None:
    """Render (or reuse) the held-out specs' views into ``sets``; says why when it cannot."""
    from jewelsearch.evaluate.retrieval_renders import render_set, studio_missing
    reason = studio_missing()
    if reason:
        click.echo(reason, err=True)
        sets.render_skipped = reason
        return
    click.echo(f"rendering {plan.specs} held-out specs x {plan.views} views into {cache} (kept for re-runs)")
    with tqdm(total=plan.specs * plan.views, unit="render", disable=None) as bar:
        paths, pairs = render_set(plan, cache, progress=bar.update)
    sets.add_renders(paths, pairs, localizer)


def _judge_local_check(encoder, sets, shipped, results: dict, report: dict) -> None:
    """The local-feature check over the shipped vector's multi-crop ranking, at each weight of
    the rule fixed before the run (``evaluate/retrieval_local.py``)."""
    from jewelsearch.embed.local_features import local_descriptors
    from jewelsearch.evaluate.retrieval_local import judge_weights
    from jewelsearch.evaluate.retrieval_run import LocalMatching, judge
    from jewelsearch.index.local_match import LOCAL_CANDIDATES, local_rerank
    base: dict = {}
    judge(sets, shipped, modes=("multi",), ranks_out=base)
    by_weight = {}
    descriptors = LocalMatching(lambda images: local_descriptors(encoder, images), local_rerank)
    for weight in LOCAL_WEIGHTS:
        click.echo(f"judging instance + local check (weight {weight})")
        local = descriptors.scored_by(lambda q, c, s, w=weight: local_rerank(q, c, s, weight=w))
        ranks: dict = {}
        results[f"instance + local check, weight {weight}"] = judge(sets, shipped, modes=("multi",), local=local,
                                                                    ranks_out=ranks)
        by_weight[weight] = ranks["multi"]
    report["local_check"] = dict(judge_weights(base["multi"], by_weight), candidates=LOCAL_CANDIDATES,
                                 base="instance / multi")
