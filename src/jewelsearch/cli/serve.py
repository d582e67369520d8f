"""The ``serve`` command: the JSON API and web page with waitress, stopped gracefully."""

from __future__ import annotations

import click

from jewelsearch.cli import Context, fail


@click.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--threads", default=None, type=int, help="Server worker threads.")
@click.option("--allow-unauthenticated-writes", is_flag=True,
              help="Accept writes without an API key (only for a private machine).")
@click.option("--rate-limits/--no-rate-limits", default=None,
              help="Limit requests per client address and endpoint class (default: on; "
                   "the rate_limit_* settings give the rates).")
@click.pass_obj
def serve(obj: Context, host, port, threads, allow_unauthenticated_writes, rate_limits):
    """Serve the JSON API and web page with waitress."""
    from jewelsearch.search.wiring import use_serving_threads
    from jewelsearch.server import create_app
    from jewelsearch.server.app import check_server_settings
    from jewelsearch.server.graceful import serve as serve_gracefully
    from jewelsearch.server.rate_limits import RateLimitSettingsError
    settings = obj.settings.with_overrides(host=host, port=port, server_threads=threads,
                                           allow_unauthenticated_writes=allow_unauthenticated_writes or None,
                                           rate_limits=rate_limits)
    try:
        check_server_settings(settings)  # before the model loads
        app = create_app(settings, obj.service)
    except RateLimitSettingsError as exc:
        fail(f"bad settings: {exc}")
    torch_threads = use_serving_threads(settings)
    if not settings.api_key and not settings.allow_unauthenticated_writes:
        click.echo("note: no JEWELSEARCH_API_KEY set, so write endpoints answer 403", err=True)
    if settings.rate_limits:
        click.echo("rate limits per client address: upload {0.rate_limit_upload}, image {0.rate_limit_image}, "
                   "text {0.rate_limit_text}, write {0.rate_limit_write} (counted in {0.rate_limit_storage})"
                   .format(settings), err=True)
    click.echo(f"jewelsearch serving {obj.service.stats()['items']} items on "
               f"http://{settings.host}:{settings.port}/ ({settings.server_threads} request threads; "
               f"torch threads per request: {torch_threads})", err=True)
    serve_gracefully(app, host=settings.host, port=settings.port, threads=settings.server_threads,
                     idle_timeout=settings.request_timeout_seconds,
                     on_stop=lambda: obj.service.save())
    click.echo("stopped", err=True)
