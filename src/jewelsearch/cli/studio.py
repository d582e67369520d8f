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
def studio_render(count, out, seed, size, spp, workers, coverage):
    """Render N pieces into OUT (images/, masks/, labels.jsonl); re-running resumes."""
    try:
        from jewelsearch.studio.batch import coverage_specs, random_specs, render_specs
    except ImportError as exc:
        fail(f"the studio needs the [studio] extra (pip install 'jewelsearch[studio]'): {exc}")
    specs = coverage_specs(count, seed) if coverage else random_specs(count, seed)
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
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Defaults to the package's demo/ folder.")
def studio_demo_catalog(folder, out):
    """Package rendered FOLDER as the bundled demo catalog."""
    from jewelsearch.ingest.demo import DEMO_DIR
    from jewelsearch.studio.batch import write_demo_catalog
    n = write_demo_catalog(folder, out or DEMO_DIR)
    click.echo(f"demo catalog: {n} items in {out or DEMO_DIR}")
