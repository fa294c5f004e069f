"""The ceiling for ingest: a Flask endpoint that only reads the body and answers 202,
served by gunicorn with exactly the relay's settings (`python -m bench.bare_app`)."""

from __future__ import annotations

from flask import Flask, jsonify, request
from gunicorn.app.base import BaseApplication

from relay.registry import default_registry
from relay.settings import Settings
from relay.web_server import gunicorn_options

app = Flask("bare")


@app.post("/webhooks/<name>")
def receive(name: str):
    request.get_data()
    return jsonify(status="accepted", id="x"), 202


class BareServer(BaseApplication):
    def __init__(self, settings: Settings):
        self.options = gunicorn_options(settings)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return app


if __name__ == "__main__":
    BareServer(Settings.from_env(platforms=default_registry().settings_specs())).run()
