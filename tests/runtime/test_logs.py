"""Log lines: emails and path tokens masked in linear time, long values cut, and a line
that cannot be formatted reported without what it carried."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import secrets
import socket
import subprocess
import sys

import pytest
import requests

from relay.runtime import logs
from relay.runtime.web_server import _log_config
from relay.settings import Settings
from tests.conftest import wait_until
from tests.redis_server import free_port

EMAIL = "grace.hopper@example.com"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ada@example.com", "a***@example.com"),
        ("x ada.lovelace+tag@sub.example.co.uk y", "x a***@sub.example.co.uk y"),
        ("email=grace%40example.com&a=1", "email=g***%40example.com&a=1"),
        ("EMAIL=Grace%40Example.COM", "EMAIL=G***%40Example.COM"),
        ("a%40b%40example.com", "a***%40example.com"),  # the last separator with a domain
        ("%%x@example.com", "%%x***@example.com"),  # a local part does not start with %
        ("no address @ here, user@localhost", "no address @ here, user@localhost"),
        ("two: a@b.io, c.d@e.org", "two: a***@b.io, c***@e.org"),
    ],
)
def test_masking_keeps_its_shapes(text, masked):
    assert logs.mask_emails(text) == masked


# Run in a child so that the quadratic masking of old ends at the timeout instead of
# holding the test run for hours: 2 MB took the old regex about 7 hours, this takes well
# under a second.
_LONG_VALUES = """
import io, json, logging
from relay.runtime import logs
two_mb = 2 * 1024 * 1024
out = {"plain": len(logs.mask_emails("a" * two_mb))}
out["encoded"] = len(logs.mask_emails("a%40" * (two_mb // 4)))
stream = io.StringIO()
logs.configure(stream=stream, log_format="json")
status = "grace.hopper@example.com " + "a" * two_mb
logging.getLogger("relay.worker").info(
    "ignored " + status, extra={"event_id": "e1", "reason": "order status " + status}
)
out["line"] = stream.getvalue()
print(json.dumps(out))
"""


def test_f2_a_2mb_value_is_logged_fast_cut_and_masked():
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LONG_VALUES], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("masking a 2 MB value took over 60 s (quadratic)")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plain"] == 2 * 1024 * 1024 and out["encoded"] == 2 * 1024 * 1024
    line = json.loads(out["line"])
    assert line["reason"].startswith("order status g***@example.com aaa")
    assert len(line["reason"]) <= logs.MAX_FIELD_CHARS + 1
    assert len(line["message"]) <= logs.MAX_MESSAGE_CHARS + 1
    assert EMAIL not in out["line"]


def _restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    gunicorn = logging.getLogger("gunicorn.error")
    saved_gunicorn = (gunicorn.handlers[:], gunicorn.level, gunicorn.propagate)

    def restore() -> None:
        root.handlers[:], root.level = saved
        gunicorn.handlers[:], gunicorn.level, gunicorn.propagate = saved_gunicorn

    return restore


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_f12_a_line_that_cannot_be_formatted_is_one_masked_line(capsys, log_format):
    restore = _restore_logging()
    try:
        # The relay's own handler ...
        stream = io.StringIO()
        logs.configure(stream=stream, log_format=log_format)
        logging.getLogger("relay.worker").info("order of %s", EMAIL, "one argument too many")
        # ... and gunicorn's, from the web server's logging configuration.
        settings = Settings(log_format=log_format)
        logging.config.dictConfig(_log_config(settings))
        logging.getLogger("gunicorn.error").warning("bad request %d from %s", EMAIL, EMAIL)
    finally:
        restore()
    captured = capsys.readouterr()
    text = stream.getvalue() + captured.err + captured.out
    assert EMAIL not in text
    assert "Logging error" not in text and "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 2, text  # one line for each failed line
    assert all("could not be formatted" in line for line in lines)
    assert "g***@example.com" not in text  # the arguments are left out altogether


def test_token_paths_are_masked_in_every_formatted_line():
    stream = io.StringIO()
    restore = _restore_logging()
    try:
        logs.configure(stream=stream, log_format="text")
        logging.getLogger("x").warning(
            "Invalid request: 'GET /webhooks/stickyio/s3cr3t-t0ken?a=1 HTTP/1.1'",
            extra={"path": "/webhooks/checkoutchamp/0ther-s3cret"},
        )
    finally:
        restore()
    text = stream.getvalue()
    assert "s3cr3t-t0ken" not in text and "0ther-s3cret" not in text
    assert "/webhooks/stickyio/***?a=1" in text and "/webhooks/checkoutchamp/***" in text


def test_f12_gunicorn_does_not_log_the_path_token_of_a_bad_request_line(tmp_path, redis_server):
    token = secrets.token_urlsafe(32)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    env.update(
        RELAY_BIND=f"127.0.0.1:{port}",
        RELAY_REDIS_URL=redis_server.url,
        RELAY_CHECKOUTCHAMP_TOKEN=token,
        RELAY_DATA_DIR=str(tmp_path / "data"),
        RELAY_LOG_FORMAT="json",
    )
    log = tmp_path / "web.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "relay", "web"], env=env, stdout=out, stderr=out
        )
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=30, what="relay web")
        # A postback whose substituted value holds a control character.
        line = f"GET /webhooks/checkoutchamp/{token}?orderId=1&emailAddress=grace%40example.com"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(line.encode() + b"\x01 HTTP/1.1\r\nHost: relay\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        wait_until(lambda: "Invalid" in log.read_text(), timeout=10, what="gunicorn's line")
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert token not in text
    assert "/webhooks/checkoutchamp/***" in text
    assert "grace%40example.com" not in text


SECRET_TOKEN = "tok-should-never-leave-1234567890"


def test_json_logs_carry_event_fields_and_mask_emails():
    stream = io.StringIO()
    logs.configure(stream=stream)
    logging.getLogger("relay.worker").info(
        "dead-lettered",
        extra={
            "event_id": "e1",
            "platform": "woocommerce",
            "outcome": "x",
            "error": "bad email ada@example.com",
            "body": "not logged",
        },
    )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event_id"] == "e1" and line["platform"] == "woocommerce"
    assert line["error"] == "bad email a***@example.com"
    assert "body" not in line and line["level"] == "info"
