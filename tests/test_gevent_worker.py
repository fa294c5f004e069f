"""The web server's gevent worker: a sender that stops in the middle of its body is
answered 408 and let go, instead of holding one of the worker's connections for good."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import stored_events
from tests.web_process import relay_web

pytestmark = pytest.mark.e2e


@pytest.fixture
def web(tmp_path, redis_server, redis):
    # The read deadline cut from 30 s to 1 s, so the test does not wait 30 s.
    patches = {"relay.gevent_worker.READ_TIMEOUT_SECONDS": 1.0}
    with relay_web(tmp_path, redis_server.url, patches) as (port, log):
        yield port, log


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
