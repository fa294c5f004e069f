"""The ceiling for ingest: a Flask endpoint that only reads the body and answers 202,
served by gunicorn with exactly the relay's settings (`python -m bench.bare_app`)."""

from __future__ import annotations

from flask import Flask, jsonify, request

from relay.registry import default_registry
from relay.settings import Settings
from relay.web_server import RelayWebServer

app = Flask("bare")


@app.post("/webhooks/<name>")
def receive(name: str):
    request.get_data()
    return jsonify(status="accepted", id="x"), 202


if __name__ == "__main__":
    settings = Settings.from_env(platforms=default_registry().settings_specs())
    RelayWebServer(settings, app).run()
