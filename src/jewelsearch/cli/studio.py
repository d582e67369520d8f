"""The ``studio`` commands: render synthetic jewelry photos, contact sheets, the demo catalog."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import fail


@click.group()
def studio():
    """Render synthetic jewelry photos with exact labels (needs the [studio] extra)."""


@studio.command("render")
@click.option("--n", "count", type=click.IntRange(1, 1_000_000), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--size", default=384, show_default=True, type=click.IntRange(16, 4096))
@click.option("--spp", default=128, show_default=True, type=click.IntRange(1, 65536))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--coverage", is_flag=True, help="Walk every style × metal × gem × cut instead of sampling.")
@click.option("--style", default=None, help="Draw only this style (stud, drop, solitaire, …).")
@click.option("--metal", default=None, help="Draw only this metal (yellow gold, platinum, …).")
@click.option("--gemstone", default=None, help="Draw only this stone (pearl, sapphire blue, …).")
def studio_render(count, out, seed, size, spp, workers, coverage, style, metal, gemstone):
    """Render N pieces into OUT (images/, masks/, labels.jsonl); re-running resumes."""
    try:
        from jewelsearch.studio.batch import coverage_specs, random_specs, render_specs
        from jewelsearch.studio.spec import pinned_parameters
    except ImportError as exc:
        fail(f"the studio needs the [studio] extra (pip install 'jewelsearch[studio]'): {exc}")
    pinned = {"style": style, "metal": metal, "gemstone": gemstone}
    if coverage and any(pinned.values()):
        fail("--coverage walks every combination; it takes no --style, --metal or --gemstone")
    try:
        pinned = pinned_parameters(**pinned)
    except ValueError as exc:
        fail(str(exc))
    specs = coverage_specs(count, seed) if coverage else random_specs(count, seed, **pinned)
    with tqdm(total=count, unit="img", disable=None) as bar:
        rendered = render_specs(specs, out, size=size, spp=spp, workers=workers, progress=bar.update)
    click.echo(f"rendered {rendered} new images into {out}")


@studio.command("sheet")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/studio.png"))
def studio_sheet(folder, out):
    """A contact sheet showing every category, cut and metal in FOLDER."""
    from jewelsearch.studio.batch import contact_sheet
    contact_sheet(folder, out)
    click.echo(f"wrote {out}")


@studio.command("demo-catalog")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Defaults to the package's demo/ folder.")
@click.option("--append", is_flag=True, help="Keep the catalog's items and add these after them.")
def studio_demo_catalog(folders, out, append):
    """Package rendered FOLDERS, in order, as the bundled demo catalog."""
    from jewelsearch.ingest.demo import DEMO_DIR
    from jewelsearch.studio.batch import write_demo_catalog
    n = write_demo_catalog(list(folders), out or DEMO_DIR, append=append)
    click.echo(f"demo catalog: {n} items in {out or DEMO_DIR}")
