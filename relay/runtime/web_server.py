"""`relay web`: the Flask app under gunicorn, configured from the relay's settings."""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from relay.runtime.logs import use_text
from relay.settings import Settings


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": settings.bind,
        "workers": settings.web_workers,
        # gevent (relay/intake/gevent_worker.py): one process serves many connections. A sender
        # that trickles its body no longer holds a whole worker (with 2 sync workers, 2 slow
        # senders stalled ingest), and webhooks arriving together share Redis's fsync
        # instead of queueing for one each: about +50 % webhooks per second with the same
        # durability (bench/, README).
        "worker_class": "relay.intake.gevent_worker.RelayGeventWorker",
        # Connections served at once per web process. A slow sender holds one for at most
        # the body deadline, and one address at most 32 (relay/intake/gevent_worker.py): 100 was
        # what one address needed to stop ingest. Each holds its body while it arrives (up
        # to RELAY_MAX_BODY_BYTES): 500 x 2 MB = 1 GB at worst, which takes 16 addresses
        # each uploading 64 MB and stalling; one address holds 64 MB at most.
        "worker_connections": 500,
        # Load the app once in the master: configuration errors stop start-up before any
        # worker forks, and forked workers share the imported code's memory.
        "preload_app": True,
        "timeout": 30,
        "graceful_timeout": 20,  # SIGTERM: finish requests in flight, then exit
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "relay-web",
        # Worker heartbeats in memory, not on the (possibly read-only, possibly slow) disk.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "logconfig_dict": _log_config(settings),
        "logger_class": "relay.runtime.web_server.QuietAccessLogger",
        "child_exit": _child_exit,
        "worker_exit": _worker_exit,
    }


class QuietAccessLogger(glogging.Logger):
    """No access log: gunicorn would otherwise format one per request (a logging config is
    set, which switches its formatting on) only to drop it."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def _worker_exit(server: Any, worker: Any) -> None:
    """In the exiting worker: close the log handlers now. Left to the interpreter's teardown,
    each one's clean-up takes logging's lock, which gevent has replaced by one that no longer
    works by then, and every worker would print a traceback as it stops."""
    logging.shutdown()
    # The weak references whose callbacks would take that lock; the handlers are closed.
    logging._handlerList.clear()  # type: ignore[attr-defined]


def _child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker exited: its live metrics no longer count."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def _log_config(settings: Settings) -> dict[str, Any]:
    """gunicorn's own lines in the relay's format (JSON, or text in a terminal)."""
    text = use_text(settings.log_format)
    formatter = "relay.runtime.logs.TextFormatter" if text else "relay.runtime.logs.JsonFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"relay": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "relay.runtime.logs.SafeStreamHandler",  # a failed line: one masked line
                "formatter": "relay",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {
            "level": os.environ.get("RELAY_LOG_LEVEL", "INFO").upper(),
            "handlers": ["stderr"],
        },
        "loggers": {
            "gunicorn.error": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


class RelayWebServer(BaseApplication):
    """gunicorn with the relay's settings, serving the relay (or, for the benchmark's
    ceiling, another app under exactly the same settings)."""

    def __init__(self, settings: Settings, app: Any = None):
        self.settings = settings
        self.options = gunicorn_options(settings)
        self.other_app = app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from relay.app import create_app

        app = self.other_app or create_app(self.settings)
        # Everything imported so far is shared with the forked workers, page for page, until
        # the garbage collector touches an object's header and the page is copied. Frozen
        # objects are never scanned: the workers keep sharing them (PSS stays low).
        gc.freeze()
        return app


def serve(settings: Settings) -> None:
    RelayWebServer(settings).run()
