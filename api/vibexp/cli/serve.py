"""``vibexp serve``: the API, MCP endpoint and dashboard under uvicorn (imported when the command runs)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import socket

    import uvicorn

    from vibexp.core.config import Settings

__all__ = [
    "KEEP_ALIVE_SECONDS",
    "MULTIPROC_ENV",
    "cmd_serve",
    "multiprocess_metrics_dir",
    "register",
    "serve_log_config",
]

#: uvicorn's factory: the app is built in each worker, after the worker has started.
APP = "vibexp.api.app:create_app"

#: uvicorn's own logger for what the server says about itself (the address it listens on, a port in use).
log = logging.getLogger("uvicorn.error")

#: Read by prometheus_client at import, in each worker (vibexp.api.metrics reads the same name).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds an idle HTTP keep-alive connection stays open. Longer than every client's and proxy's own idle timeout
#: (httpx 5 s, ingress-nginx's upstream keep-alive 60 s, AWS ALB 60 s), so the side that reuses a connection is the
#: side that retires it: a server closing first races the next request and resets it (uvicorn's default is 5 s).
KEEP_ALIVE_SECONDS = 75


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the API, MCP endpoint and dashboard")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=os.environ.get("VIBEXP_WORKERS", "1"),  # argparse converts a string default with `type`
        help="worker processes (default 1, or VIBEXP_WORKERS); metrics then use Prometheus multiprocess mode",
    )
    serve.set_defaults(func=cmd_serve)


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


def serve_log_config(level: str) -> dict[str, object]:
    """One plain line per record on stderr, for uvicorn's loggers and everyone else's alike.

    Configuring the root logger first also matters: the MCP SDK calls ``logging.basicConfig`` with a Rich handler,
    which wraps lines at the terminal width and so splits records in a log collector; with a root handler in place
    its call does nothing.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        # uvicorn's access log prints query strings, where a careless client may put its key (issue 12).
        "filters": {"redact": {"()": "vibexp.api.access_log.RedactQueryString"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn.access": {"filters": ["redact"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from vibexp.api.settings import get_api_settings
    from vibexp.cli.listeners import balanced_listeners

    # The app (made by uvicorn's factory call) prints links with this address, e.g. the first-run setup link.
    if "VIBEXP_PUBLIC_URL" not in os.environ:
        wildcard = args.host in ("0.0.0.0", "::")  # noqa: S104 - recognising it, not binding it
        host = "127.0.0.1" if wildcard else f"[{args.host}]" if ":" in args.host else args.host
        os.environ["VIBEXP_PUBLIC_URL"] = f"http://{host}:{args.port}"
        os.environ["VIBEXP_PUBLIC_URL_DERIVED"] = "true"  # OAuth metadata uses the request's own base URL then
        get_api_settings.cache_clear()

    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_config": serve_log_config(settings.log_level),
        "log_level": settings.log_level,
        # Exactly one layer decides the client address: VibeXP's (VIBEXP_TRUSTED_PROXIES). uvicorn's own proxy
        # handling would trust X-Forwarded-For from loopback (FORWARDED_ALLOW_IPS) and rewrite the peer.
        "proxy_headers": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": 10,
    }
    with multiprocess_metrics_dir(args.workers):
        if args.workers > 1 and balanced_listeners():
            return _serve_workers(uvicorn.Config(APP, **options))
        uvicorn.run(APP, **options)
    return 0


def _serve_workers(config: uvicorn.Config) -> int:
    """uvicorn's worker supervisor, each worker on a listening socket of its own (``vibexp.cli.listeners``)."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from vibexp.cli.listeners import ReusePortListener, reserve_port

    try:
        holder = reserve_port(config.host, config.port)
    except OSError as exc:
        log.error("%s", exc)  # as uvicorn says it: "[Errno 98] Address already in use"
        return STARTUP_FAILURE
    with holder:
        port = holder.getsockname()[1]
        log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", config.host, port)
        listener = cast("socket.socket", ReusePortListener(config.host, port))
        Multiprocess(config, sockets=[listener]).run()
    return 0


@contextlib.contextmanager
def multiprocess_metrics_dir(workers: int) -> Iterator[None]:
    """Prometheus multiprocess mode for several workers: each writes its samples to files in one directory and any
    worker's ``/metrics`` answers for all of them.

    ``PROMETHEUS_MULTIPROC_DIR`` (set by the operator of the process, e.g. the chart's emptyDir) is used if given
    and emptied of the previous run's files first (stale files would add a dead run's counts); else a private
    directory is made and removed at exit. One worker needs none: its registry is in memory.
    """
    if workers <= 1:
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vibexp-metrics-") as tmp:
        os.environ[MULTIPROC_ENV] = tmp  # inherited by the workers uvicorn spawns
        try:
            yield
        finally:
            os.environ.pop(MULTIPROC_ENV, None)
