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
@click.option("--replicas", type=int, default=None,
              help="Serve with N read replicas and one writer: worker processes on this machine, or Ray "
                   "Serve with --address (or --engine ray).")
@click.option("--engine", type=click.Choice(["auto", "ray", "local"]), default="auto", show_default=True,
              help="With --replicas: worker processes on this machine sharing one port (local, no Ray), or "
                   "Ray Serve (one node or many; needs the [cluster] extra). auto: Ray where --address or "
                   "--ship-copies asks for a cluster, else local.")
@click.option("--address", default=None,
              help="With --replicas: the Ray cluster to serve on (auto, ray://HOST:PORT); with --engine ray "
                   "and no address, a local Ray cluster on this machine.")
@click.option("--ship-copies", is_flag=True,
              help="With --engine ray: send every replica copies of the home, also replicas on the "
                   "writer's node (which read the home itself by default).")
@click.option("--refresh-seconds", type=float, default=2.0, show_default=True,
              help="With --replicas: how often a replica asks the writer for a newer copy of the catalog.")
@click.pass_obj
def serve(obj: Context, host, port, threads, allow_unauthenticated_writes, rate_limits, replicas, engine, address,
          ship_copies, refresh_seconds):
    """Serve the JSON API and web page with waitress (or, with --replicas, on local workers or Ray Serve)."""
    engine = replica_engine(engine, address, ship_copies)
    if replicas is not None and engine == "local":
        if address or ship_copies:
            fail("--address and --ship-copies go with --engine ray")
        return _serve_local(obj, host, port, threads, allow_unauthenticated_writes, rate_limits, replicas,
                            refresh_seconds)
    if replicas is not None:
        return _serve_replicas(obj, host, port, allow_unauthenticated_writes, rate_limits, replicas, address,
                               refresh_seconds, ship_copies)
    if address:
        fail("--address goes with --replicas")
    from jewelsearch.search.wiring import serve_query_texts, use_serving_threads
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
    text_runtime = serve_query_texts(settings, obj.service)
    if settings.text_query_runtime == "auto" and text_runtime == "torch" and not settings.text_query_int8:
        text_runtime = "torch, OpenVINO opening in the background"
    if not settings.api_key and not settings.allow_unauthenticated_writes:
        click.echo("note: no JEWELSEARCH_API_KEY set, so write endpoints answer 403", err=True)
    if settings.rate_limits:
        click.echo("rate limits per client address: upload {0.rate_limit_upload}, image {0.rate_limit_image}, "
                   "text {0.rate_limit_text}, write {0.rate_limit_write} (counted in {0.rate_limit_storage})"
                   .format(settings), err=True)
    click.echo(f"jewelsearch serving {obj.service.stats()['items']} items on "
               f"http://{settings.host}:{settings.port}/ ({settings.server_threads} request threads; "
               f"torch threads per request: {torch_threads}; query text tower: {text_runtime})", err=True)
    serve_gracefully(app, host=settings.host, port=settings.port, threads=settings.server_threads,
                     idle_timeout=settings.request_timeout_seconds,
                     on_stop=lambda: obj.service.save())
    click.echo("stopped", err=True)


def replica_engine(engine: str, address: str | None, ship_copies: bool) -> str:
    """The engine ``--engine auto`` means: Ray only where a cluster is asked for. On one machine
    the local engine answers about 3x the queries of Ray Serve, whose proxy takes a third of a
    core there (``docs/scaling.md``).

    >>> replica_engine("auto", None, False), replica_engine("auto", "auto", False), replica_engine("ray", None, False)
    ('local', 'ray', 'ray')
    """
    if engine != "auto":
        return engine
    return "ray" if address or ship_copies else "local"


def _serve_local(obj: Context, host, port, threads, allow_unauthenticated_writes, rate_limits, replicas,
                 refresh_seconds):
    import signal
    import threading

    from jewelsearch.server.local_replicas import LocalReplicas
    settings = obj.settings.with_overrides(host=host, port=port, server_threads=threads,
                                           allow_unauthenticated_writes=allow_unauthenticated_writes or None,
                                           rate_limits=rate_limits)
    _check_replica_options(settings, replicas, refresh_seconds)
    try:
        pool = LocalReplicas(settings, replicas, refresh_seconds)
    except ValueError as exc:  # a setting only the local engine reads (replica_accept_limit)
        fail(str(exc))
    try:
        pool.start()
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
    signal.signal(signal.SIGTERM, lambda *_: pool.stopping.set())
    click.echo(f"jewelsearch serving on http://{settings.host}:{pool.address[1]}/ with {replicas} read worker "
               f"processes and one writer (local engine; new catalog versions within {refresh_seconds:g} s)",
               err=True)
    watcher = threading.Thread(target=pool.watch, name="worker-watch", daemon=True)
    watcher.start()
    try:
        while watcher.is_alive():
            watcher.join(0.5)
    except KeyboardInterrupt:
        pass
    pool.stop()
    click.echo("stopped", err=True)


def _check_port_free(host: str, port: int) -> None:
    """Serve's proxy on a port already taken does not fail: it retries its health check forever while
    nothing answers. On a cluster this call starts, the proxy runs here, so a taken port is refused first."""
    import socket
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")


def _check_replica_options(settings, replicas: int, refresh_seconds: float) -> None:
    """Refuse, with a clear message, what no replica engine can start with."""
    from jewelsearch.server.app import check_server_settings
    from jewelsearch.server.rate_limits import RateLimitSettingsError
    if replicas < 1:
        fail("--replicas must be 1 or more")
    if refresh_seconds <= 0:
        fail("--refresh-seconds must be more than 0")
    if not settings.db_path.exists():
        fail(f"no catalog at {settings.db_path}; ingest first (or `jewelsearch demo`)")
    try:
        check_server_settings(settings)
    except RateLimitSettingsError as exc:
        fail(f"bad settings: {exc}")


def _serve_replicas(obj: Context, host, port, allow_unauthenticated_writes, rate_limits, replicas, address,
                    refresh_seconds, ship_copies=False):
    import signal
    import threading

    settings = obj.settings.with_overrides(host=host, port=port,
                                           allow_unauthenticated_writes=allow_unauthenticated_writes or None,
                                           rate_limits=rate_limits)
    _check_replica_options(settings, replicas, refresh_seconds)
    if not address:
        _check_port_free(settings.host, settings.port)
    import ray
    from ray import serve as ray_serve

    from jewelsearch.search.ray_ingest import connect
    from jewelsearch.server.replicas import build_app, plan_replicas
    started = connect(address)
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        try:
            plan_replicas(cpus, replicas)
        except ValueError as exc:
            fail(str(exc))
        ray_serve.start(http_options={"host": settings.host, "port": settings.port},
                        logging_config={"log_level": "WARNING"})
        ray_serve.run(build_app(settings, replicas, cpus, refresh_seconds=refresh_seconds, share_home=not ship_copies),
                      name="jewelsearch", route_prefix="/")
        click.echo(f"jewelsearch serving on http://{settings.host}:{settings.port}/ with {replicas} read "
                   f"replicas and one writer on Ray Serve", err=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        ray_serve.shutdown()
    finally:
        if started:
            ray.shutdown()
    click.echo("stopped", err=True)
