"""`relay run` as a merchant starts it: real gunicorn, real worker, embedded redis-server."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from redis import Redis

from relay.fixtures import fixtures
from relay.mapping import Record
from relay.registry import default_registry
from relay.verifiers import StandardWebhooksSignature
from tests.conftest import API_KEY, WOO_SECRET, wait_until, woo_headers
from tests.fakeapi import FakeCommerceApi
from tests.redis_server import free_port

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).parents[1] / "mappers/woocommerce/fixtures"


class RelayProcess:
    def __init__(self, tmp_path: Path, **env: str):
        self.port = free_port()
        self.data_dir = tmp_path / "data"
        self.log = tmp_path / "relay.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        self.env = {
            **base,
            "RELAY_BIND": f"127.0.0.1:{self.port}",
            "RELAY_DATA_DIR": str(self.data_dir),
            "RELAY_WOOCOMMERCE_SECRET": WOO_SECRET,
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RelayProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "run"], env=self.env, stdout=log, stderr=log
            )
        wait_until(self._ready, timeout=30, what=f"relay to be ready (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return requests.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def post_woo(self, name: str, topic: str, secret: str = WOO_SECRET) -> requests.Response:
        body = (FIXTURES / name).read_bytes()
        return requests.post(
            f"{self.url}/webhooks/woocommerce",
            data=body,
            headers=woo_headers(body, topic, secret=secret),
            timeout=5,
        )

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "relay", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def deliveries(api: FakeCommerceApi) -> list:
    """What the worker delivered (not its account reads: which workspace, relay/delivery/
    account.py)."""
    return [r for r in api.requests if r.method != "GET"]


def test_webhooks_reach_the_api_through_relay_run(tmp_path, fake_api):
    worker_metrics_port = free_port()
    relay = RelayProcess(
        tmp_path,
        RELAY_COMMERCE_API_URL=fake_api.url,
        RELAY_COMMERCE_API_KEY=API_KEY,
        RELAY_WOOCOMMERCE_CURRENCY="EUR",
        RELAY_WORKERS="2",
        # Meant for a worker run alone: two workers of `relay run` must not both take it.
        RELAY_WORKER_METRICS_BIND=f"127.0.0.1:{worker_metrics_port}",
    ).start()
    try:
        ping = requests.post(
            f"{relay.url}/webhooks/woocommerce",
            data="webhook_id=3",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert ping.status_code == 200
        assert relay.post_woo("order.processing.guest.json", "order.created").status_code == 202
        assert relay.post_woo("product.simple.on-sale.json", "product.updated").status_code == 202
        again = relay.post_woo("order.processing.guest.json", "order.created")
        assert again.json() == {"status": "duplicate"}
        forged = relay.post_woo("order.cancelled.json", "order.updated", secret="guess")
        assert forged.status_code == 401

        received = wait_until(
            lambda: len(deliveries(fake_api)) >= 2 and deliveries(fake_api),
            timeout=20,
            what="two deliveries",
        )
        by_path = {r.path: r for r in received}
        assert by_path["/api/v1/orders"].body["orderId"] == "1042"
        assert by_path["/api/v1/orders"].header("authorization") == f"Bearer {API_KEY}"
        product = by_path["/api/v1/products"].body["products"][0]
        assert (product["productId"], product["currency"]) == ("41", "EUR")

        # The web server's /metrics counts its workers' deliveries...
        metrics = requests.get(f"{relay.url}/metrics", timeout=5).text
        assert 'relay_deliveries_total{endpoint="orders",outcome="delivered"} 1.0' in metrics
        # A worker asked which workspace the data lands in; /readyz shows it from Redis.
        shown = wait_until(
            lambda: requests.get(f"{relay.url}/readyz", timeout=5).json()["workspace"].get("name"),
            timeout=20,
            what="the workspace on /readyz",
        )
        assert shown == "Fake Shop"
        # ...so no worker of `relay run` listens on the standalone workers' metrics port.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{worker_metrics_port}/metrics", timeout=2)
    finally:
        code = relay.stop()
    assert code == 0, relay.log.read_text()
    assert len(deliveries(fake_api)) == 2  # the duplicate and the forgery were never sent
    assert not (relay.data_dir / "redis.url").exists()


def test_slow_senders_do_not_hold_up_other_webhooks(tmp_path, fake_api):
    """A sender on a bad line (or one that stalls on purpose) trickles its body. It must not
    keep a store's webhooks waiting: WooCommerce counts a slow answer as a failure."""
    relay = RelayProcess(
        tmp_path, RELAY_COMMERCE_API_URL=fake_api.url, RELAY_COMMERCE_API_KEY=API_KEY
    ).start()
    stalled = []
    try:
        for _ in range(8):  # more than the web server has processes
            sock = socket.create_connection(("127.0.0.1", relay.port))
            sock.sendall(
                b"POST /webhooks/woocommerce HTTP/1.1\r\nHost: relay\r\n"
                b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"id": '
            )
            stalled.append(sock)
        started = time.monotonic()
        response = relay.post_woo("order.processing.guest.json", "order.created")
        assert response.status_code == 202
        assert time.monotonic() - started < 2
        delivered = wait_until(lambda: deliveries(fake_api), timeout=20, what="a delivery")
        assert delivered[0].path == "/api/v1/orders"
    finally:
        for sock in stalled:
            sock.close()
        code = relay.stop()
    assert code == 0, relay.log.read_text()


def test_sandbox_records_survive_a_stop(tmp_path, fake_api):
    relay = RelayProcess(tmp_path).start()  # no API key: sandbox
    try:
        assert relay.post_woo("order.created.wc8.0.2.json", "order.created").status_code == 202
        wait_until(
            lambda: "/api/v1/orders" in relay.cli("sandbox").stdout,
            timeout=20,
            what="sandbox record",
        )
    finally:
        assert relay.stop() == 0
    # With the relay stopped, the CLI opens the embedded data itself.
    records = json.loads(relay.cli("sandbox", "--json").stdout)
    assert [r["body"]["status"] for r in records] == ["fulfilled", "placed"]  # newest first
    assert fake_api.requests == []


# --- every platform, through relay send, relay run and the worker, to the fake API --------


def platform_secret(platform) -> str:
    if isinstance(platform.verifier, StandardWebhooksSignature):  # wants a whsec_ secret
        return "whsec_" + base64.b64encode(b"e2e-secret-for-standard-webhooks").decode()
    return f"e2e-{platform.name}-secret"


@pytest.fixture(scope="module")
def module_api():
    api = FakeCommerceApi(api_key=API_KEY).start()
    yield api
    api.stop()
    api.assert_contract_kept()


@pytest.fixture(scope="module")
def all_platforms_relay(tmp_path_factory, module_api):
    env = {
        f"RELAY_{p.name.upper()}_{p.secret_kind.upper()}": platform_secret(p)
        for p in default_registry()
    }
    relay = RelayProcess(
        tmp_path_factory.mktemp("all"),
        RELAY_COMMERCE_API_URL=module_api.url,
        RELAY_COMMERCE_API_KEY=API_KEY,
        **env,
    ).start()
    yield relay
    assert relay.stop() == 0


def sendable_fixtures(platform) -> list[tuple[Path, list[Record]]]:
    """Fixtures that need no mapper options and whose records go to the API on their own
    (variants wait until the relay knows their product's whole list), and that a platform
    can send (not those with headers: records the relay fetched from the store itself,
    which `relay send`, a webhook, cannot carry)."""
    cases = []
    for fixture in fixtures(platform):
        expected = fixture.expected()
        # An unpaid order cancelled before it was announced is, by rule, never sent.
        records = [
            r
            for r in map(Record.from_dict, expected.get("records", []))
            if not r.hints.get("neverPaid")
        ]
        if (
            records
            and not expected.get("options")
            and not expected.get("headers")
            and all(r.kind != "variant" for r in records)
        ):
            cases.append((fixture.body, records))
    return cases


def arrived(api: FakeCommerceApi, record: Record) -> bool:
    for received in list(api.requests):
        body = received.body
        if record.kind == "product" and received.path == "/api/v1/products":
            if record.data in body["products"]:
                return True
        elif record.kind == "product_delete":
            if received.method == "DELETE" and received.path.endswith(
                "/" + record.data["productId"]
            ):
                return True
        elif record.kind == "subscriber":
            # Created with the merge strategy; `createdAt` depends on when the relay got the
            # event (`relay send` is now, long after a fixture's registration).
            if received.path == "/api/v1/subscribers" and all(
                body.get(k) == v for k, v in record.data.items() if k != "createdAt"
            ):
                return True
        elif body == record.data:
            return True
    return False


def forget_entities(relay: RelayProcess) -> None:
    """Fixtures of one platform reuse order ids (one order through its events); each is
    checked on its own, as the first sighting of its entities."""
    redis = Redis.from_url((relay.data_dir / "redis.url").read_text().strip())
    for pattern in ("relay:state:*", "relay:product:*", "relay:variants:*"):
        keys = list(redis.scan_iter(pattern))
        if keys:
            redis.delete(*keys)


@pytest.mark.parametrize("platform_name", default_registry().names())
def test_each_platform_end_to_end(all_platforms_relay, module_api, platform_name):
    platform = default_registry().get(platform_name)
    cases = sendable_fixtures(platform)
    assert cases, f"{platform_name} has no fixture that sends anything"
    for body_path, records in cases:
        forget_entities(all_platforms_relay)
        result = all_platforms_relay.cli("send", platform_name, str(body_path))
        assert result.returncode == 0, result.stdout + result.stderr
        for record in records:
            wait_until(
                lambda r=record: arrived(module_api, r),
                timeout=20,
                what=f"{body_path.name}: {record.kind} at the fake API",
            )
