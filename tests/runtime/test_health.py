"""/healthz and /readyz against a real Redis that goes away and comes back."""

from __future__ import annotations

import time
from dataclasses import replace

from relay.app import create_app
from tests.redis_server import RedisServer

GRACE = 3


def test_f8_healthz_fails_once_redis_is_gone_for_longer_than_the_grace(tmp_path, settings):
    """Review F8: /healthz (the image's HEALTHCHECK, the Kubernetes liveness probe) stayed
    200 while the relay could store nothing, so no orchestrator ever restarted it. A short
    outage must not fail it (that would restart every relay on a Redis failover)."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        app = create_app(replace(settings, redis_url=server.url, healthz_grace_seconds=GRACE))
        web = app.test_client()
        assert web.get("/healthz").status_code == 200
        server.crash()
        assert web.get("/readyz").status_code == 503  # at once: stop sending webhooks here
        assert web.get("/healthz").status_code == 200  # a blip, so far
        time.sleep(GRACE + 0.5)
        gone = web.get("/healthz")
        assert gone.status_code == 503
        assert gone.get_json()["error"]["code"] == "redis_unreachable"
        server.start()  # back on the same port
        assert web.get("/healthz").status_code == 200
        assert web.get("/readyz").status_code == 200
    finally:
        server.stop()
