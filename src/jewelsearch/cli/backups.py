"""``backup`` and ``restore``: a consistent copy of a home, taken while the server runs, and
its return. Neither loads the model."""

from __future__ import annotations

from pathlib import Path

import click

from jewelsearch.cli import Context


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.pass_obj
def backup(obj: Context, dest):
    """Back up the catalog, the current index and the photos into the new folder DEST.

    Safe while the server runs and writes: the database is copied as of one commit and every
    photo it references comes with it."""
    from jewelsearch.search.backup import create_backup
    settings = obj.settings
    manifest = create_backup(settings.db_path, settings.images_dir, settings.index_dir, dest)
    click.echo(f"backed up {manifest.items} items, {manifest.events} events and {manifest.images} photos "
               f"(catalog version {manifest.catalog_version}, model {manifest.model_id}) to {dest}")
    if manifest.index is None:
        click.echo("note: the home had no saved index; it is built from the stored embeddings on first open",
                   err=True)
    elif not manifest.index["matches_catalog"]:
        click.echo(f"note: the saved index (catalog version {manifest.index['catalog_version']}) was not the "
                   "snapshot's; after a restore it is rebuilt from the stored embeddings on first open", err=True)
    if manifest.missing_images:
        click.echo(f"warning: {len(manifest.missing_images)} photos the catalog references were already missing "
                   "from the home (`jewelsearch check` lists them)", err=True)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--home", "target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The home to restore into (default: the global --home).")
@click.option("--force", is_flag=True, help="Replace the catalog of a home that is not empty.")
@click.pass_obj
def restore(obj: Context, src, target, force):
    """Check the backup in SRC and restore it into a home (stop the server first).

    Every file is checked against the backup's checksums before the home changes; a home that
    already holds a catalog is replaced only with --force (its jewelsearch.toml is kept)."""
    from jewelsearch.search.restore import restore_backup
    report = restore_backup(src, target or obj.settings.home, force=force)
    manifest = report.manifest
    click.echo(f"restored {manifest.items} items, {manifest.events} events and {manifest.images} photos "
               f"from the backup of {manifest.created_at} into {report.home}"
               + (" (its earlier catalog was replaced)" if report.replaced else ""))


COMMANDS = [backup, restore]
