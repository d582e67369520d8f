"""The ``train`` steps that refit recognition inside a model folder: robust-top, context-heads,
stone-heads, gem-specialist (``cli.train`` adds them to the group, in that order)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import Context, fail
from jewelsearch.cli.inputs import protected_photos


def _train_split_sources(command):
    """--products, --gemstones and --renders, whose train splits a training command reads."""
    command = click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                           help="Studio renders (labels.jsonl); the localiser's held-out ones stay out.")(command)
    command = click.option("--gemstones", type=click.Path(exists=True, file_okay=False, path_type=Path),
                           required=True,
                           help="gemstones/ folder (class subfolders); its train split is used.")(command)
    return click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                        help="products/ folder (labels.csv); its train split is used.")(command)


@click.command("robust-top")
@_train_split_sources
@click.option("--worn", "worn_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="worn/ folder: the background half of its products (never evaluated) joins, unlabelled.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Box CSV of evaluation photos: their products stay out.")
@click.option("--views", default=3, show_default=True, type=click.IntRange(1, 10),
              help="Degraded copies of each photo (one random photo-quality loss each).")
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1, 100))
@click.option("--lr", default=1e-4, show_default=True, type=click.FloatRange(1e-7, 1e-1))
@click.option("--clean-weight", default=3.0, show_default=True, type=click.FloatRange(0, 100),
              help="How many degraded views a clean view counts as (it keeps clean photos' features).")
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the distillation set and a per-epoch checkpoint here, so a rerun resumes.")
@click.option("--store", type=click.Choice(["recognition", "tower"]), default="recognition", show_default=True,
              help="recognition: keep the tuned top beside the tower, read by recognition only (search "
                   "embeddings and the model id stay); tower: replace the tower's top (every embedding moves).")
@click.pass_obj
def robust_top(obj: Context, products, gemstones, renders, worn_root, protect_csv, views, epochs, lr, clean_weight,
               seed, work, store):
    """Fine-tune the image tower's top so degraded photos give the clean photo's features.
    The targets are the loaded tower's own maps: with --store tower, run it on an untuned copy,
    or it tunes again; a recognition top is always tuned from the search tower and replaced."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.train.labelled_data import train_split_records
    from jewelsearch.train.localizer import background_records
    from jewelsearch.train.robust_top_step import tune_robust_top
    from jewelsearch.train.robust_tuning import supports_robust_tuning
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    if encoder.folder is None or not supports_robust_tuning(encoder.model.visual):
        fail("train robust-top needs a jewelsearch model folder with an EfficientNet-style image tower")
    records = train_split_records(products, gemstones, renders)
    worn = background_records(worn_root, protected_photos(protect_csv) if protect_csv else set()) \
        if worn_root is not None else []
    try:
        summary, written = tune_robust_top(encoder, records, worn, views=views, epochs=epochs, lr=lr,
                                           clean_weight=clean_weight, seed=seed, work=work, store=store,
                                           progress=click.echo)
    except ValueError as error:
        fail(str(error))
    click.echo(json.dumps({k: summary[k] for k in ("before", "after")}, indent=2))
    click.echo(f"tuned top written to {written}")


@click.command("context-heads")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="products/ folder (train split photos are used; val stays for evaluation).")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="worn/ folder: every photo's labels are trained on (with fold heads for evaluation); "
                   "the background half of its products lends real scenery.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--crops", default=3000, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--worn-views", default=6, show_default=True, type=click.IntRange(0, 20),
              help="Augmented copies of each worn photo.")
@click.option("--shop-views", default=2, show_default=True, type=click.IntRange(0, 20),
              help="Augmented copies of each shop photo.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(0, 20),
              help="Also fit the heads once per fold of worn products, that fold left out, so evaluation "
                   "judges every worn photo with heads that never saw its product (0 or 1: no folds).")
@click.option("--seed", default=0, show_default=True)
@click.option("--rows-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the embedded training rows here (.npz) and reuse them when the image tower and options "
                   "match (a retrained projection re-embeds them from their saved pooled maps), so a refit skips "
                   "the tower passes (delete it after changing the augmentation code).")
@click.option("--piece-pooling/--no-piece-pooling", default=False, show_default=True,
              help="Also pool the tower's maps under the localiser's piece map (needs a localiser in the model "
                   "folder): the heads read what the piece looks like, not only the whole photo.")
@click.pass_obj
def context_heads(obj: Context, renders, products, worn_root, protect_csv, crops, worn_views, shop_views, folds, seed,
                  rows_cache, piece_pooling):
    """Refit the category and metal heads on shop photos, worn photos and pieces cropped from busy scenes."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.train.head_refits import refit_context_heads
    from jewelsearch.train.labelled_data import read_worn
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    if heads is None:
        fail("the model folder has no attribute heads to refit")
    piece_head = None
    if piece_pooling:
        from jewelsearch.recognize.localizer import Localizer
        localizer = Localizer.load(encoder, encoder.folder)
        if localizer is None:
            fail("--piece-pooling needs a localiser in the model folder (train one with `jewelsearch train localizer`)")
        piece_head = localizer.head
    protected = protected_photos(protect_csv) if protect_csv else set()
    # Every worn photo's labels are trained on; the fold heads keep evaluation honest.
    worn = read_worn(worn_root) if worn_root is not None else []
    refit = refit_context_heads(encoder, heads, renders=renders, products=products, worn=worn, worn_root=worn_root,
                                protected=protected, crops=crops, worn_views=worn_views, shop_views=shop_views,
                                folds=folds, seed=seed, rows_cache=rows_cache, piece_head=piece_head,
                                progress=click.echo)
    if refit.dropped:
        click.echo(f"dropped the {', '.join(refit.dropped)} context heads (fitted on the old standardisation); "
                   "run `jewelsearch train stone-heads` again")
    click.echo(f"category and metal heads written to {encoder.folder}")


@click.command("stone-heads")
@_train_split_sources
@click.option("--views", default=2, show_default=True, type=click.IntRange(0, 6),
              help="Augmented copies of each shop photo and render (half with photo-quality losses).")
@click.option("--gem-views", default=1, show_default=True, type=click.IntRange(0, 6),
              help="Augmented copies of each loose-stone photo.")
@click.option("--exposure-views", default=0, show_default=True, type=click.IntRange(0, 6),
              help="Extra copies of each shop photo and render with a strong exposure error.")
@click.option("--seed", default=0, show_default=True)
@click.option("--rows-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the embedded rows here, or reuse them when made by the same tower and recipe.")
@click.pass_obj
def stone_heads(obj: Context, products, gemstones, renders, views, gem_views, exposure_views, seed, rows_cache):
    """Fit gemstone and cut heads that also read the tower's pooled maps (after train context-heads, whose
    context standardisation they share; they read its first block, never the piece pooling)."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.gem_features import supports_gem_features
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.train.head_refits import refit_stone_heads
    from jewelsearch.train.labelled_data import train_split_records
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    if heads is None or not supports_gem_features(encoder):
        fail("stone heads need a jewelsearch model folder with attribute heads and a convolutional tower")
    records = train_split_records(products, gemstones, renders)
    try:
        summary = refit_stone_heads(encoder, heads, records, views=views, gem_views=gem_views,
                                    exposure_views=exposure_views, seed=seed, rows_cache=rows_cache,
                                    progress=click.echo)
    except ValueError as error:
        fail(str(error))
    click.echo(f"stone heads kept: {', '.join(summary['kept']) or 'none'}; written to {encoder.folder}")


@click.command("gem-specialist")
@click.option("--gemstones", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="gemstones/ folder (class subfolders); its train split is used, val stays for evaluation.")
@click.option("--views", default=2, show_default=True, type=click.IntRange(0, 10),
              help="Extra augmented copies of each photo (blur, noise, small, JPEG, exposure; never hue).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def gem_specialist(obj: Context, gemstones, views, folds, seed):
    """Fit the gem specialist (which loose stone) on the tower's pooled maps and colour."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.gem_features import supports_gem_features
    from jewelsearch.recognize.recognition_top import load_recognition_top
    from jewelsearch.train.gem_specialist import train_gem_specialist
    from jewelsearch.train.labelled_data import read_gemstones
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    if encoder.folder is None or not supports_gem_features(encoder):
        fail("the gem specialist needs a jewelsearch model folder with a convolutional image tower")
    records = [r for r in read_gemstones(gemstones) if r.split == "train"]
    if not records:
        fail(f"no photos in class subfolders of {gemstones}")
    with tqdm(total=len(records) * (1 + views), unit="img", disable=None) as bar:
        specialist, summary = train_gem_specialist(encoder, records, views=views, folds=folds, seed=seed,
                                                   progress=click.echo, on_images=bar.update,
                                                   top=load_recognition_top(encoder))
    specialist.save(encoder.folder, summary)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"gem specialist written to {encoder.folder}")


@click.command("style-head")
@click.option("--demo/--no-demo", "use_demo", default=True, show_default=True,
              help="Train on the bundled demo catalog's renders (their titles name the style).")
@click.option("--renders", "render_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Studio render folders (labels.jsonl with style); never the held-out search renders.")
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the photos' features here, so a rerun skips the tower.")
@click.pass_obj
def style_head(obj: Context, use_demo, render_dirs, seed, work):
    """Fit the style head (solitaire, halo, hoop ...) on the pooled maps the other heads read,
    with the fill threshold chosen on a tuning fifth of the photos."""
    import numpy as np
    from PIL import Image

    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.recognize.gem_features import supports_gem_features
    from jewelsearch.train.style_head import demo_photos, fit_style_head, render_photos
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    if encoder.folder is None or not supports_gem_features(encoder):
        fail("the style head needs a jewelsearch model folder with a convolutional image tower")
    photos = demo_photos(Path(__file__).resolve().parents[1] / "demo") if use_demo else []
    for folder in render_dirs:
        if not (folder / "labels.jsonl").is_file():
            fail(f"no labels.jsonl in {folder}")
        photos += render_photos(folder)
    if not photos:
        fail("no labelled photos: keep --demo or give --renders")
    recognizer = load_recognizer(encoder, gem_specialist=False)
    cache = Path(work) / f"style-features-{encoder.model_id[:12]}.npz" if work else None
    keys = [p.key for p in photos]
    if cache is not None and cache.is_file() and list(np.load(cache)["keys"]) == keys:
        saved = np.load(cache)
        embeddings, pooled = saved["embeddings"], saved["pooled"]
    else:
        parts = []
        with tqdm(total=len(photos), unit="img", disable=None) as bar:
            for start in range(0, len(photos), 32):
                chunk = [Image.open(p.path).convert("RGB") for p in photos[start:start + 32]]
                parts.append(recognizer.embed(chunk))
                bar.update(len(chunk))
        embeddings = np.concatenate([e for e, _ in parts])
        pooled = np.concatenate([p for _, p in parts])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, keys=np.array(keys), embeddings=embeddings, pooled=pooled)
    category = recognizer.probabilities(embeddings, pooled)["category"]
    vocabulary = recognizer.vocabulary("category")
    predicted = [vocabulary[i] for i in category.argmax(1)]
    head = fit_style_head(embeddings, pooled, photos, predicted, seed=seed, progress=click.echo)
    head.save(encoder.folder)
    click.echo(json.dumps(head.summary, indent=2))
    click.echo(f"style head written to {encoder.folder} (fill threshold {head.fill_threshold})")
