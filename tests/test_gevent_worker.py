"""The web server's gevent worker: a sender that stops in the middle of its body is
answered 408 and let go, instead of holding one of the worker's connections for good."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import WOO_SECRET, stored_events, wait_until
from tests.redis_server import free_port

pytestmark = pytest.mark.e2e

# `relay web` with the read deadline cut from 30 s to 1 s, so the test does not wait 30 s.
WEB_WITH_SHORT_DEADLINE = (
    "import sys, relay.gevent_worker as w; w.READ_TIMEOUT_SECONDS = 1.0; "
    "from relay.cli import main; sys.argv = ['relay', 'web']; main()"
)


@pytest.fixture
def web(tmp_path, redis_server, redis):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    env.update(
        RELAY_BIND=f"127.0.0.1:{port}",
        RELAY_REDIS_URL=redis_server.url,
        RELAY_WOOCOMMERCE_SECRET=WOO_SECRET,
        RELAY_DATA_DIR=str(tmp_path / "data"),
    )
    log = tmp_path / "web.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", WEB_WITH_SHORT_DEADLINE], env=env, stdout=out, stderr=out
        )

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=30, what="relay web")
    yield port, log
    process.terminate()
    process.wait(30)


def test_a_body_that_stops_arriving_gets_408_and_stores_nothing(web, redis):
    port, log = web
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/woocommerce HTTP/1.1\r\nHost: relay\r\n"
            b"Content-Type: application/json\r\nX-WC-Webhook-Topic: order.created\r\n"
            b'Content-Length: 5000\r\n\r\n{"id": 1, '
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert stored_events(redis) == []
    assert "Traceback" not in log.read_text()
