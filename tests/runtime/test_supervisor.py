"""`relay run`'s supervisor: the process tree it starts, logs and keeps alive (real
`relay run`, real gunicorn, worker and embedded redis-server)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import API_KEY, wait_until, woo_headers
from tests.test_e2e_relay_run import RelayProcess

pytestmark = pytest.mark.e2e
ORDER = Path(__file__).parents[2] / "mappers/woocommerce/fixtures/order.processing.guest.json"
ADMIN_TOKEN = "supervisor-test-admin-token-0123456789"


def children(parent: int, command: str) -> list[int]:
    """Pids of `parent`'s children whose command line contains `command` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and command in cmdline:
            found.append(int(entry.name))
    return found


def post_order(relay: RelayProcess, order_id: int) -> requests.Response:
    payload = json.loads(ORDER.read_text())
    payload["id"] = payload["number"] = order_id
    body = json.dumps(payload).encode()
    return requests.post(
        f"{relay.url}/webhooks/woocommerce",
        data=body,
        headers=woo_headers(body, "order.created"),
        timeout=10,
    )


def test_f6_the_embedded_redis_password_is_in_no_log_or_output(tmp_path):
    """Review F6: with a RELAY_DATA_DIR too long for a unix socket, the embedded Redis
    listens on loopback with a random password, and `relay run` logged the URL with it."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    relay = RelayProcess(tmp_path, RELAY_DATA_DIR=str(deep), RELAY_ADMIN_TOKEN=ADMIN_TOKEN)
    relay.data_dir = deep
    relay.start()
    try:
        url = urlsplit((deep / "redis.url").read_text().strip())
        assert url.password and len(url.password) >= 16 and url.hostname == "127.0.0.1"
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        shown = {
            path: requests.get(f"{relay.url}{path}", headers=bearer, timeout=10).text
            for path in ("/readyz", "/healthz", "/metrics", "/admin/", "/admin/api/status")
        }
        for command in (["check"], ["dlq", "list"], ["mappers"], ["sandbox"]):
            result = relay.cli(*command)
            shown[f"relay {' '.join(command)}"] = result.stdout + result.stderr
    finally:
        assert relay.stop() == 0
    shown["log"] = relay.log.read_text()
    assert f"127.0.0.1:{url.port}" in shown["log"]  # the line naming the embedded Redis
    assert [where for where, text in shown.items() if url.password in text] == []


def test_f8_a_killed_embedded_redis_is_restarted_and_nothing_is_lost(tmp_path, fake_api):
    """Review F8: after `kill -KILL` of the embedded redis-server, every webhook got 503 for
    good and the redis-server stayed a zombie; only restarting `relay run` recovered."""
    relay = RelayProcess(
        tmp_path, RELAY_COMMERCE_API_URL=fake_api.url, RELAY_COMMERCE_API_KEY=API_KEY
    ).start()
    try:
        before = list(range(5001, 5011))
        assert [post_order(relay, n).status_code for n in before] == [202] * len(before)
        [redis_pid] = children(relay.process.pid, "redis-server")
        [web_pid] = children(relay.process.pid, "relay web")
        os.kill(redis_pid, signal.SIGKILL)  # some of `before` are still waiting in Redis

        # A platform whose webhook is refused sends it again later: nothing answered 503
        # was stored, everything answered 202 must arrive.
        after, refused = list(range(6001, 6006)), []

        def accepted(n: int) -> bool:
            status = post_order(relay, n).status_code
            if status != 202:
                refused.append(status)
            return status == 202

        wait_until(lambda: accepted(after[0]), timeout=30, what="webhooks accepted again")
        assert set(refused) <= {503}
        assert all(accepted(n) for n in after[1:])
        [restarted] = children(relay.process.pid, "redis-server")
        assert restarted != redis_pid
        # The same web server: the Redis URL it was given at start still works.
        assert children(relay.process.pid, "relay web") == [web_pid]

        def delivered() -> set[int]:
            return {
                int(r.body["orderId"]) for r in fake_api.applied if r.path == "/api/v1/orders"
            }

        # A drain job that failed on the lost Redis is retried by RQ once a worker's
        # maintenance pass (every 30 s) has restarted the retry scheduler that died with it.
        wait_until(lambda: delivered() >= set(before + after), timeout=120, what="every order")
        assert delivered() == set(before + after)
        assert requests.get(f"{relay.url}/healthz", timeout=10).status_code == 200
    finally:
        code = relay.stop()
    assert code == 0, relay.log.read_text()
    assert "restarted redis-server" in relay.log.read_text()
