"""`relay web`: the Flask app under gunicorn, configured from the relay's settings."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from relay.settings import Settings


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": settings.bind,
        "workers": settings.web_workers,
        "worker_class": "sync",
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
    }


class RelayWebServer(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.options = gunicorn_options(settings)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from relay.app import create_app

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    RelayWebServer(settings).run()
