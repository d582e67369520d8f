"""``train render-heads``: refit context heads with studio renders, keeping real photos' answers
(``train/render_refit.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import Context, fail

SUMMARY_FILE = "render_refit.json"


@click.command("render-heads")
@click.option("--renders", "render_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Studio render folders (labels.jsonl), or a renders catalog (items.jsonl, as the demo's). "
                   "A third of each (by file name) tunes, the rest fits. Never the held-out search renders.")
@click.option("--fit-only", "fit_only_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Render folders that only fit, such as the demo catalog the shipped heads already saw "
                   "(their held-out seventh tunes).")
@click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="products/ folder: a sample of its train split keeps the shipped heads' answers.")
@click.option("--gemstones", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="gemstones/ folder: a sample of its train split likewise.")
@click.option("--attributes", default="category,metal,gemstone,cut", show_default=True,
              help="Comma-separated context heads to refit.")
@click.option("--anchors", default=(300, 200), nargs=2, type=click.IntRange(0, 100_000), show_default=True,
              help="How many products and gemstone training photos to keep the answers of.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use at most this many renders per folder.")
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/render-heads"),
              show_default=True, help="Keeps the photos' features, so a rerun skips the tower.")
@click.pass_obj
def render_heads(obj: Context, render_dirs, fit_only_dirs, products, gemstones, attributes, anchors, limit, seed,
                 work):
    """Refit the context heads (category, metal, gemstone, cut) so that they read studio renders
    too; the real photos' answers are kept by distillation. Writes heads.safetensors/heads.json
    and render_refit.json in the model folder."""
    import numpy as np

    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.train.photo_embeddings import embed_records
    from jewelsearch.train.render_features import RenderFeatures, render_features
    from jewelsearch.train.render_refit import anchor_records, refit_heads
    from jewelsearch.train.splits import held_out_render, in_render_refit_tuning
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    if heads is None or not heads.context_attributes:
        fail("render-heads refits context heads: the model folder has none (run train context-heads first)")
    wanted = [a.strip() for a in attributes.split(",") if a.strip()]
    missing = [a for a in wanted if a not in heads.context_attributes]
    if missing:
        fail(f"no context head for {', '.join(missing)} in {encoder.folder}")
    recognizer = load_recognizer(encoder, gem_specialist=False)
    tag = encoder.model_id[-12:]
    parts, tuning = [], []
    for folder, fit_only in [(d, False) for d in render_dirs] + [(d, True) for d in fit_only_dirs]:
        cache = Path(work) / f"renders-{folder.name}-{limit or 'all'}-{tag}.npz"
        if cache.is_file():
            features = RenderFeatures.load(cache)
        else:
            with tqdm(unit="img", desc=folder.name, disable=None) as bar:
                features = render_features(recognizer, folder, limit=limit, progress=bar.update)
            features.save(cache)
        parts.append(features)
        for key in features.keys:
            index = int(Path(key).stem) if Path(key).stem.isdigit() else -1
            tuning.append(held_out_render(index) if fit_only else in_render_refit_tuning(key))
    renders = RenderFeatures.concatenate(parts)
    records = anchor_records(products, gemstones, *anchors)
    cache = Path(work) / f"anchors-{anchors[0]}-{anchors[1]}-{tag}.npz"
    keys = [str(r.path) for r in records]
    if cache.is_file() and list(np.load(cache)["keys"]) == keys:
        saved = np.load(cache)
        anchor_embeddings, anchor_pooled = saved["embeddings"], saved["pooled"]
    else:
        with tqdm(total=len(records), unit="img", desc="anchors", disable=None) as bar:
            anchor_embeddings, anchor_pooled = embed_records(recognizer.embed, records, progress=bar.update)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(keys), embeddings=anchor_embeddings, pooled=anchor_pooled)
    anchor_tuning = [in_render_refit_tuning(k) for k in keys]
    try:
        summary = refit_heads(heads, wanted, renders, tuning, anchor_embeddings, anchor_pooled, anchor_tuning,
                              anchor_sources=[r.source for r in records], seed=seed, progress=click.echo)
    except ValueError as exc:
        fail(str(exc))
    summary = {"renders": [str(d) for d in render_dirs], "fit_only": [str(d) for d in fit_only_dirs],
               "anchors": {"products": anchors[0], "gemstones": anchors[1]}, "attributes": summary}
    heads.save(encoder.folder)
    (encoder.folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"heads written to {encoder.folder}")
