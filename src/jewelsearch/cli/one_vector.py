"""The one-vector design from the command line: ``train one-vector`` fits the candidate (one
vector per item, trained for text and instance retrieval together) beside the model, never into
it; ``eval one-vector`` measures it against the shipped two-vector design."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from jewelsearch.cli import Context, fail
from jewelsearch.cli.instance import retrieval_sets

_folder_option = click.Path(exists=True, file_okay=False, path_type=Path)
CANDIDATE_FILE = "candidate.safetensors"


def _weights(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise click.BadParameter(f"comma-separated numbers expected, got {text!r}")
    if not weights or any(not (w >= 0) for w in weights):
        raise click.BadParameter("loss weights must be numbers, 0 or more")
    return weights


@click.command("one-vector")
@click.option("--products", type=_folder_option, required=True,
              help="products/ folder (labels.csv); its train split is used, its calibration tenth for tuning.")
@click.option("--worn", "worn_root", type=_folder_option, required=True,
              help="worn/ folder; only products the model folder already trained on are used.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/one-vector"),
              show_default=True, help="Where the cached tower features, each fit and the chosen candidate go.")
@click.option("--weights", "weights_text", default="0,0.25,0.5,1,2", show_default=True,
              help="Instance-loss weights to compare on the tuning photos.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--pastes-per-photo", default=4, show_default=True, type=click.IntRange(1, 20),
              help="Pasted pieces made of each catalog photo (the shipped head: 4).")
@click.option("--augmented-share", default=0.3, show_default=True, type=click.FloatRange(0, 1),
              help="How often the catalog side is an augmented copy (0 skips their tower passes).")
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_one_vector(obj: Context, products, worn_root, out, weights_text, epochs, pastes_per_photo,
                     augmented_share, seed):
    """Fit the one-vector candidate at each loss weight, pick one on the tuning photos by the
    rule fixed beforehand, and write it to OUT (the model folder is not touched)."""
    weights = _weights(weights_text)
    import numpy as np
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.evaluate.one_vector import pick_weight, shipped_from_features, tuning_scores
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train import instance_head, one_vector
    from jewelsearch.train.labelled_data import read_products, read_worn, worn_products_seen
    from jewelsearch.train.splits import in_calibration_split
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    if encoder.folder is None:
        fail("the candidate starts from a model folder's projection: pass one with --model")
    seen = worn_products_seen(encoder.folder)
    worn = [r for r in read_worn(worn_root) if r.group in seen]
    catalog = [r for r in read_products(products) if r.split == "train"]
    if not worn or not catalog:
        fail("need the products train split and worn photos of products this model already trained on")
    out.mkdir(parents=True, exist_ok=True)
    # The shipped head's pairs, drawn the same way (fewer of them where asked).
    views_recipe = instance_head.InstanceRecipe(seed=seed, pastes_per_photo=pastes_per_photo,
                                                augmented_share=augmented_share)
    raw = instance_head.raw_head(views_recipe)
    cache = out / (f"views-{encoder.model_id[:16]}-{len(catalog)}-{len(worn)}-p{pastes_per_photo}"
                   f"-a{augmented_share:g}-s{seed}.npz")
    if cache.is_file():
        views = instance_head.InstanceViews(**dict(np.load(cache, allow_pickle=False)))
        click.echo(f"tower features from {cache}")
    else:
        try:
            views = instance_head.build_views(encoder, Localizer.load(encoder, encoder.folder), catalog, worn,
                                              views_recipe, lambda ims: one_vector.tower_features(encoder, raw, ims))
        except ValueError as exc:
            fail(str(exc))
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez(tmp, **vars(views))
        tmp.replace(cache)
    tune = np.asarray([in_calibration_split(r.path.name) for r in catalog])
    gem_dim = sum(_channels(encoder).values())
    gem_mean = np.concatenate([views.pasted, views.clean])[:, :gem_dim].mean(0)
    start = one_vector.starting_projection(encoder, gem_mean)
    targets = one_vector.text_targets(encoder, catalog, one_vector.OneVectorRecipe().captions_per_photo, seed)
    reference = tuning_scores(_vectors(start), views, tune, catalog, encoder.encode_texts)
    click.echo(f"shipped text-aligned vector on the {reference['photos']} tuning photos: {reference}")
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    shipped = None
    if head is not None and head.projection is not None:
        # Flattered: the shipped head trained on these photos' pasted pieces (other pastes).
        shipped = tuning_scores(shipped_from_features(head, start.aligned.detach()), views, tune, catalog)
        click.echo(f"shipped two vectors (image queries) on the tuning photos: {shipped}")
    scores = {}
    for weight in weights:
        recipe = one_vector.OneVectorRecipe(instance_weight=weight, epochs=epochs, seed=seed,
                                            augmented_share=augmented_share)
        fitted = one_vector.fit(views, targets, recipe, start, train_photos=~tune)
        scores[weight] = tuning_scores(_vectors(fitted), views, tune, catalog, encoder.encode_texts)
        fitted.save(out / f"weight-{weight:g}.safetensors", {"instance_weight": weight, "epochs": epochs})
        click.echo(f"instance weight {weight:g}: {scores[weight]}")
    chosen = pick_weight(scores, reference)
    summary = {"trained": datetime.date.today().isoformat(), "model": encoder.model_id,
               "catalog_photos": int((~tune).sum()), "tuning_photos": int(tune.sum()),
               "pasted_pieces": int(len(views.pasted)), "worn_photos": len(worn), "epochs": epochs,
               "pastes_per_photo": pastes_per_photo, "augmented_share": augmented_share,
               "reference": reference, "shipped_two_vectors": shipped, "scores": {f"{w:g}": s for w, s in scores.items()},
               "chosen_weight": chosen}
    (out / "tuning.json").write_text(json.dumps(summary, indent=2) + "\n")
    if chosen is None:
        fail("no loss weight kept text search and category precision on the tuning photos; see tuning.json")
    (out / CANDIDATE_FILE).write_bytes((out / f"weight-{chosen:g}.safetensors").read_bytes())
    click.echo(f"chosen instance weight {chosen:g}: {out / CANDIDATE_FILE}")


def _vectors(projection):
    """Cached tower feature rows -> a candidate's unit vectors, as numbers."""
    return lambda rows: projection.of_features(rows).detach().numpy()


def _channels(encoder) -> dict[str, int]:
    """Width of each raw GeM block the candidate reads (the shipped head's blocks)."""
    from jewelsearch.embed.instance import block_channels
    from jewelsearch.train.instance_head import BLOCKS
    channels = block_channels(encoder.model.visual)
    return {name: channels[name] for name, _ in BLOCKS}


@click.command("one-vector")
@click.option("--worn", "worn_root", type=_folder_option, required=True,
              help="worn/ folder (labels.csv with product); products the model trained on are left out.")
@click.option("--catalog", "catalog_root", type=_folder_option, required=True,
              help="products/ folder: its val photos are the clean catalog and the text-search gallery.")
@click.option("--candidate", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("runs/one-vector") / CANDIDATE_FILE, show_default=True,
              help="The candidate `train one-vector` wrote.")
@click.option("--pasted", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--renders", "render_specs", default=100, show_default=True, type=click.IntRange(0, 10_000),
              help="Held-out studio specs for render-to-render retrieval (0: none).")
@click.option("--render-cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/retrieval-renders"), show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/one-vector"),
              show_default=True)
@click.pass_obj
def eval_one_vector(obj: Context, worn_root, catalog_root, candidate, pasted, render_specs, render_cache, out):
    """One vector for text and image queries against the shipped two vectors: image retrieval
    (worn, pasted, renders, category P@10) and text search P@10 on held-out shop photos."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.evaluate.one_vector import OnePass, compare, pass_over
    from jewelsearch.evaluate.retrieval_renders import RenderSetPlan
    from jewelsearch.evaluate.retrieval_report import write_retrieval_report
    from jewelsearch.train import instance_head
    from jewelsearch.train.one_vector import OneVectorProjection
    try:
        projection = OneVectorProjection.load(candidate)
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        fail(f"cannot read the candidate {candidate}: {exc}")
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    if head is None:
        fail("the model's tower has no dense maps: there is no instance vector to compare with")
    if projection.gem_dim != sum(_channels(encoder).values()):
        fail(f"the candidate reads {projection.gem_dim} GeM numbers; this model's tower gives "
             f"{sum(_channels(encoder).values())}: it was fitted for another model")
    plan = RenderSetPlan(render_specs, 3, 224, 32) if render_specs else None
    sets, catalog = retrieval_sets(encoder, worn_root, catalog_root, pasted, plan, render_cache)
    one_pass = OnePass(encoder, head, projection, instance_head.raw_head(instance_head.InstanceRecipe()))
    click.echo("one tower pass over every set")
    pass_over(one_pass, sets)
    report = {"model": encoder.model_id, "candidate": str(candidate), "sets": sets.describe(),
              **compare(sets, one_pass, catalog, encoder.encode_texts)}
    path = write_retrieval_report(report, out)
    click.echo(path.read_text())
    click.echo(json.dumps({"text_search_products_val": report["text_search_products_val"],
                           "stored_float32_bytes_per_item": report["stored_float32_bytes_per_item"]}, indent=2))
