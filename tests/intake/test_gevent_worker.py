"""The web server's gevent worker: a sender that stops in the middle of its body, or
trickles it, is answered 408 and let go, and one address cannot hold every connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest

from relay.intake.gevent_worker import MAX_CONNECTIONS_PER_CLIENT, client_key
from tests.conftest import stored_events, woo_headers
from tests.web_process import relay_web

pytestmark = pytest.mark.e2e


@pytest.fixture
def web(tmp_path, redis_server, redis):
    # The deadlines cut from 30 s to 1 s (a read) and 2 s (a body), so tests do not wait.
    patches = {
        "relay.intake.gevent_worker.READ_TIMEOUT_SECONDS": 1.0,
        "relay.intake.gevent_worker.BODY_DEADLINE_SECONDS": 2.0,
    }
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


SLOW_HEAD = (
    b"POST /webhooks/woocommerce HTTP/1.1\r\nHost: relay\r\n"
    b"Content-Type: application/json\r\nX-WC-Webhook-Topic: order.created\r\n"
    b"Content-Length: 100000\r\n\r\n{"
)
ORDER = Path(__file__).parents[2] / "mappers/woocommerce/fixtures/order.created.wc8.0.2.json"


def test_f5_slow_senders_cost_their_own_connections_not_the_service(web, redis):
    # Review: 100 connections sending a header block, then one body byte every 10 s,
    # stopped all ingest (worker_connections was 100, and no deadline bounded a body).
    port, log = web
    senders = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
    for sock in senders:
        sock.sendall(SLOW_HEAD)
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.3 s: never silent for the 1 s read deadline
        while not stop.wait(0.3):
            for sock in senders:
                with contextlib.suppress(OSError):  # refused, or answered and closed
                    sock.send(b" ")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        # A genuine webhook from another address is served at once.
        body = ORDER.read_bytes()
        started = time.monotonic()
        probe = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0)
        )
        probe.request("POST", "/webhooks/woocommerce", body, woo_headers(body, "order.created"))
        assert probe.getresponse().status == 202
        assert time.monotonic() - started < 3
        probe.close()
        answers = read_until_closed(senders, timeout=10)
    finally:
        stop.set()
        trickler.join(5)
        for sock in senders:
            sock.close()
    # The ones that got a connection were cut off by the body deadline; the rest were
    # refused at once. None is left open.
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429") or a == b"reset"]
    assert 0 < len(timed_out) <= MAX_CONNECTIONS_PER_CLIENT
    assert len(timed_out) + len(refused) == len(senders)
    assert all(b'"body_timeout"' in a for a in timed_out)
    assert [e.topic for e in stored_events(redis)] == ["order.created"]  # the probe only
    assert "Traceback" not in log.read_text()


def test_behind_a_proxy_every_connection_is_the_proxys_and_none_is_capped(tmp_path, redis_server):
    patches = {"relay.intake.gevent_worker.BODY_DEADLINE_SECONDS": 2.0}
    env = {"RELAY_TRUST_PROXY": "yes"}
    with relay_web(tmp_path, redis_server.url, patches, env) as (port, _log):
        count = MAX_CONNECTIONS_PER_CLIENT + 8
        senders = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in senders:
            sock.sendall(SLOW_HEAD)
        try:
            answers = read_until_closed(senders, timeout=10)
        finally:
            for sock in senders:
                sock.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers)  # none refused


def test_a_client_is_its_ipv4_address_or_its_ipv6_64():
    assert client_key(("203.0.113.7", 5000)) == "203.0.113.7"
    assert client_key(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::"
    assert client_key(("2001:db8:1:2:bbbb::9", 5001, 0, 0)) == "2001:db8:1:2::"
    assert client_key(("2001:db8:1:3::1", 5000, 0, 0)) == "2001:db8:1:3::"
    assert client_key(("::ffff:203.0.113.7", 5000, 0, 0)) == "203.0.113.7"


def read_until_closed(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """Everything each socket receives until the relay closes it ("reset" if it reset)."""
    received = {sock: b"" for sock in socks}
    open_socks = set(socks)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while open_socks and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk, received[sock] = b"", received[sock] or b"reset"
                if not chunk:
                    selector.unregister(sock)
                    open_socks.discard(sock)
                else:
                    received[sock] += chunk
    assert not open_socks, f"{len(open_socks)} connections still open after {timeout} s"
    return [received[sock] for sock in socks]
