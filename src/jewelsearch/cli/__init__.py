"""Command-line interface; the only place that prints or exits.

This module holds the ``jewelsearch`` group, its global options and the ``Context`` every
command receives; the commands live in one module per group (catalog, query, serve, train,
evaluate, studio, users) and are registered at the bottom. Commands parse options, call one library
function, and print.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from jewelsearch.config import Settings, load_settings
from jewelsearch.errors import JewelsearchError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Context:
    """What a command needs: the settings, and the search service opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._service = None

    @property
    def service(self):
        if self._service is None:
            from jewelsearch.search.wiring import SettingsError, open_service
            try:
                self._service = open_service(self.settings)
            except SettingsError as exc:
                fail(f"bad settings: {exc}")
        return self._service

    def open_catalog(self):
        """The store alone, for commands that need no model (the caller closes it)."""
        from jewelsearch.search.wiring import SettingsError, open_catalog
        try:
            return open_catalog(self.settings)
        except SettingsError as exc:
            fail(f"bad settings: {exc}")


def fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class JewelsearchGroup(click.Group):
    """Turns library errors into one clear line and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except JewelsearchError as exc:
            fail(str(exc), 2 if exc.status < 500 else 1)


def configure_logging(verbose: bool) -> None:
    """Quiet by default (warnings only). With ``-v`` libraries log at INFO and jewelsearch at
    DEBUG: the model loader shows the transformers / open_clip load reports only when the
    ``jewelsearch`` logger is enabled for DEBUG."""
    logging.basicConfig(format=LOG_FORMAT)  # a stderr handler, unless one is already there
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    # Unset without -v, so jewelsearch follows the root's WARNING (and a caller's own level later).
    logging.getLogger("jewelsearch").setLevel(logging.DEBUG if verbose else logging.NOTSET)


@click.group(cls=JewelsearchGroup)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Catalog directory (default: $JEWELSEARCH_HOME or ./jewelsearch-data).")
@click.option("--model", default=None, help="Model folder, bundled model name, or open_clip model name.")
@click.option("--pretrained", default=None, help="open_clip pretrained tag or checkpoint path.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and warnings.")
@click.pass_context
def main(ctx, home, model, pretrained, verbose):
    """jewelsearch: visual similarity search and recommendations for jewelry."""
    configure_logging(verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        settings = load_settings(home, overrides={"model": model, "pretrained": pretrained})
    except (ValueError, OSError) as exc:
        fail(f"bad settings: {exc}")
    ctx.obj = Context(settings)


# The command modules import Context and fail from here, so they are imported once both exist.
from jewelsearch.cli import backups, catalog, evaluate, items, query, recommender, serve, studio, train, users  # noqa: E402

for _command in (*catalog.COMMANDS, *items.COMMANDS, *backups.COMMANDS, *query.COMMANDS, serve.serve, train.train,
                 evaluate.eval_group, studio.studio, users.users, recommender.recommender):
    main.add_command(_command)
for _alias, _command in train.hidden_aliases():
    main.add_command(_command, _alias)
