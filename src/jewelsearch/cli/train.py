"""The ``train`` group: the steps that make a model folder, listed in the order they must run.

``train encoder`` writes a new folder; every later step refits one part of it in place (pass the
folder with ``--model``). The steps and what each must come after are in ``docs/training.md``.
The names the steps had as top-level commands stay as hidden aliases.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import click

from jewelsearch.cli import Context, fail
from jewelsearch.cli.inputs import hand_boxes, protected_photos
from jewelsearch.cli.instance import train_instance_head
from jewelsearch.cli.one_vector import train_one_vector
from jewelsearch.cli.train_heads import context_heads, gem_specialist, robust_top, stone_heads, style_head
from jewelsearch.cli.train_render_heads import render_heads

# The order the steps must run in, and the top-level name each had before the group.
STEP_ORDER = ("encoder", "localizer", "stone-branch", "robust-top", "context-heads", "stone-heads", "gem-specialist",
              "instance-head", "style-head", "render-heads")
OLD_NAMES = {"localizer": "train-localizer", "stone-branch": "train-stone-channel", "robust-top": "tune-robust",
             "context-heads": "train-context-head", "stone-heads": "train-stone-heads",
             "gem-specialist": "train-gem-head"}


class StepOrderGroup(click.Group):
    """A group whose help lists its commands in the order they must run, not alphabetically."""

    def list_commands(self, ctx):
        known = [name for name in STEP_ORDER if name in self.commands]
        return known + sorted(name for name in self.commands if name not in STEP_ORDER)


@click.group(cls=StepOrderGroup, short_help="Make a model folder, step by step, in the order they must run.")
def train():
    """Train a model folder, one step after the other, in this order:

    \b
    1. encoder         fine-tune the default model into a new folder (--out)
    2. localizer       the piece finder (drops a stone branch)
    3. stone-branch    the localiser's stone map (after localizer)
    4. robust-top      a tower top that sees through blur, noise, JPEG, exposure
    5. context-heads   category and metal heads on the recognition top's maps
    6. stone-heads     gemstone and cut heads (after context-heads)
    7. gem-specialist  which loose stone
    8. instance-head   the "find this exact piece" vector (after localizer)
    9. style-head      how a piece is built (solitaire, halo, hoop...), for photos without words
    10. render-heads   context heads refitted with studio renders (real photos' answers kept)

    Steps 2 to 10 refit the folder given with `jewelsearch --model FOLDER`. Listed after them,
    `one-vector` is an experiment: it writes runs/, never a model folder.
    """


@train.command("encoder")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Root of the real photo sets (products/, gemstones/, worn/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/train"),
              show_default=True, help="Feature cache and logs (resumable).")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Studio renders (labels.jsonl) to train on too; the localiser's held-out renders are left out.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--seed", default=0, show_default=True)
def encoder(data_root, out, work, renders, epochs, seed):
    """Fine-tune the default model's projections and attribute heads on real photos (and renders)."""
    from jewelsearch.train.encoder_step import train_encoder
    try:
        result = train_encoder(data_root, out, work, renders=renders, epochs=epochs, seed=seed)
    except ValueError as exc:
        fail(str(exc))
    click.echo(f"model {result.model_id} written to {out} (best epoch {result.best_epoch})")


@train.command("localizer")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A `studio render` folder (images, masks, labels.jsonl).")
@click.option("--products", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional products/ folder (train/ and val/) whose white-sweep photos become cut-outs.")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional worn/ folder: half of its products lend real scenery as backgrounds; "
                   "the other half stays for `eval regions`.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with a path column (e.g. hand-drawn boxes) whose photos never become backgrounds.")
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Hand-drawn boxes (path, x0, y0, x1, y1; every visible piece) of background-half worn photos: "
                   "their jewelry is then labelled as jewelry instead of counted as background.")
@click.option("--scenes", default=4000, show_default=True, type=click.IntRange(10, 200_000))
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/localizer"),
              show_default=True, help="Cache of prepared scenes, so a re-run only retrains the head.")
@click.pass_obj
def localizer(obj: Context, renders, products, worn_root, protect_csv, boxes_csv, scenes, epochs, seed, work):
    """Train the piece localiser head into the model folder (the encoder stays as it is)."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.train.localizer import train_localizer
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    if encoder.folder is None:
        fail("the localiser is stored in a model folder; pass --model with one")
    protected = protected_photos(protect_csv) if protect_csv else set()
    photo_boxes = hand_boxes(boxes_csv) if boxes_csv else None
    if photo_boxes is not None and protected & set(photo_boxes):
        fail("--boxes names photos that --protect keeps out of training: "
             + ", ".join(sorted(protected & set(photo_boxes))[:5]))
    summary = train_localizer(encoder, renders, products, encoder.folder, worn_root=worn_root, protected=protected,
                              photo_boxes=photo_boxes, train_scenes=scenes,
                              val_scenes=max(50, scenes // 8), epochs=epochs, seed=seed, cache_dir=work,
                              progress=click.echo)
    click.echo(json.dumps(summary, indent=2))


@train.command("stone-branch")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A `studio render` folder: its training renders give exact per-cell stone targets.")
@click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="products/ folder: its train photos' stone labels (none, or a stone) are the weak labels.")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional worn/ folder whose background half lends real scenery (as train localizer).")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--scenes", default=1500, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def stone_branch(obj: Context, renders, products, worn_root, protect_csv, boxes_csv, scenes, epochs, seed):
    """Train a stone branch for the localiser (the piece map stays bit-identical), on render
    composites and shop photos labelled plain or with a stone."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_products
    from jewelsearch.train.localizer import background_photos
    from jewelsearch.train.stone_branch import train_stone_branch
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained, loader=obj.settings.model_loader)
    localizer = Localizer.load(encoder, encoder.folder)
    if localizer is None:
        fail("this model has no localiser to refit (train one with `jewelsearch train localizer`)")
    if not (Path(products) / "labels.csv").is_file():
        fail(f"no labels.csv in {products}")
    protected = protected_photos(protect_csv) if protect_csv else set()
    photo_boxes = hand_boxes(boxes_csv) if boxes_csv else None
    background = background_photos(worn_root, protected, photo_boxes)
    shop = [r for r in read_products(Path(products)) if r.split == "train"]
    try:
        summary = train_stone_branch(localizer, renders, shop, encoder.folder, background=background,
                                      scenes=scenes, epochs=epochs, seed=seed, progress=click.echo)
    except ValueError as exc:
        fail(str(exc))
    click.echo(json.dumps(summary, indent=2))


for _command in (robust_top, context_heads, stone_heads, gem_specialist, train_instance_head, style_head,
                 render_heads, train_one_vector):
    train.add_command(_command)


def hidden_aliases() -> list[tuple[str, click.Command]]:
    """(old name, a hidden copy of the step's command) for each step that was a top-level
    command, so scripts written for the old names keep working without showing in the help."""
    aliases = []
    for step, old in OLD_NAMES.items():
        alias = copy.copy(train.commands[step])
        alias.hidden = True
        aliases.append((old, alias))
    return aliases
