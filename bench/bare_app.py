"""The ceilings for ingest, served by gunicorn with exactly the relay's settings.

`python -m bench.bare_app`          the bare endpoint: reads the body, answers 202.
`python -m bench.bare_app --store`  the same plus the least a durable ingest must do before
                                    it answers: one write of the body to the relay's Redis
                                    (an LPUSH, with the relay's own client settings).

The second one separates what the relay's own work costs from what storing before
answering costs on this machine's disk, whatever the code around it.
"""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request

from relay.redis_conn import connect
from relay.registry import default_registry
from relay.runtime.web_server import RelayWebServer
from relay.settings import Settings

STORE_KEY = "bench:stored"


def create(store_url: str | None = None) -> Flask:
    app = Flask("bare")
    redis = connect(store_url) if store_url else None

    @app.post("/webhooks/<name>")
    def receive(name: str):
        body = request.get_data()
        if redis is not None:
            redis.lpush(STORE_KEY, body)
        return jsonify(status="accepted", id="x"), 202

    return app


if __name__ == "__main__":
    settings = Settings.from_env(platforms=default_registry().settings_specs())
    store = "--store" in sys.argv[1:]
    RelayWebServer(settings, create(settings.redis_url if store else None)).run()
