"""The ``serve`` command: the JSON API and web page with waitress, stopped gracefully."""

from __future__ import annotations

import click

from jewelsearch.cli import Context


@click.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--threads", default=None, type=int, help="Server worker threads.")
@click.option("--allow-unauthenticated-writes", is_flag=True,
              help="Accept writes without an API key (only for a private machine).")
@click.pass_obj
def serve(obj: Context, host, port, threads, allow_unauthenticated_writes):
    """Serve the JSON API and web page with waitress."""
    from jewelsearch.search.wiring import use_serving_threads
    from jewelsearch.server import create_app
    from jewelsearch.server.graceful import serve as serve_gracefully
    settings = obj.settings.with_overrides(host=host, port=port, server_threads=threads,
                                           allow_unauthenticated_writes=allow_unauthenticated_writes or None)
    app = create_app(settings, obj.service)
    torch_threads = use_serving_threads(settings)
    if not settings.api_key and not settings.allow_unauthenticated_writes:
        click.echo("note: no JEWELSEARCH_API_KEY set, so write endpoints answer 403", err=True)
    click.echo(f"jewelsearch serving {obj.service.stats()['items']} items on "
               f"http://{settings.host}:{settings.port}/ ({settings.server_threads} request threads; "
               f"torch threads per request: {torch_threads})", err=True)
    serve_gracefully(app, host=settings.host, port=settings.port, threads=settings.server_threads,
                     idle_timeout=settings.request_timeout_seconds,
                     on_stop=lambda: obj.service.save())
    click.echo("stopped", err=True)
