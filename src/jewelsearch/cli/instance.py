"""Instance retrieval from the command line: ``train instance-head`` and ``eval retrieval``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from jewelsearch.cli import Context, fail

_folder_option = click.Path(exists=True, file_okay=False, path_type=Path)


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
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size)
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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/retrieval"),
              show_default=True)
@click.pass_obj
def eval_retrieval(obj: Context, worn_root, catalog_root, pasted, out):
    """Find-this-piece retrieval: text-aligned vs. instance vectors, whole / piece / multi-crop
    queries, with and without re-ranking."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead, instance_vectors
    from jewelsearch.evaluate.retrieval_report import write_retrieval_report
    from jewelsearch.evaluate.retrieval_run import build_sets, judge
    from jewelsearch.index.rerank import alpha_query_expansion, k_reciprocal
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_products, read_worn, unseen_worn, worn_products_seen
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size)
    worn = unseen_worn(read_worn(worn_root), worn_products_seen(encoder.folder))
    catalog = [r for r in read_products(catalog_root) if r.split == "val"]
    try:
        sets = build_sets(worn, catalog, Localizer.load(encoder, encoder.folder), pasted=pasted)
    except ValueError as exc:
        fail(str(exc))
    visual = encoder.model.visual
    head = InstanceHead.load(encoder.folder, visual)
    descriptors = {"text-aligned": encoder.encode_images}
    if head is not None:
        default = InstanceHead.default()
        descriptors["instance, untrained (GeM of the last map)"] = lambda ims: instance_vectors(encoder, default, ims)
        if head.aligned_weight:
            alone = InstanceHead(head.blocks, head.p, head.mean, head.projection)
            descriptors["instance part alone (no aligned part)"] = lambda ims: instance_vectors(encoder, alone, ims)
        descriptors[f"instance ({head.space_id})"] = lambda ims: instance_vectors(encoder, head, ims)
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
    path = write_retrieval_report(report, out)
    click.echo(path.read_text())
    click.echo(json.dumps(sets.describe()))
