"""SIGTERM while webhooks arrive and deliveries run: every webhook the relay answered 2xx
is delivered, if need be by the next start on the same data (embedded Redis, append-only)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import API_KEY, wait_until, woo_headers
from tests.fakeapi import Scripted
from tests.test_e2e_relay_run import RelayProcess

pytestmark = pytest.mark.e2e
ORDER = json.loads(
    (
        Path(__file__).parents[1] / "mappers/woocommerce/fixtures/order.processing.guest.json"
    ).read_text()
)


def test_sigterm_loses_nothing_that_was_accepted(tmp_path, fake_api):
    # The API answers slowly enough that deliveries are mid-flight when SIGTERM comes.
    fake_api.fault = lambda received: Scripted(None, 202, delay=0.01)
    env = {"RELAY_COMMERCE_API_URL": fake_api.url, "RELAY_COMMERCE_API_KEY": API_KEY}
    relay = RelayProcess(tmp_path, **env).start()
    accepted: list[str] = []

    def post(n: int) -> None:
        body = json.dumps({**ORDER, "id": 80000 + n, "number": str(80000 + n)}).encode()
        try:
            answer = requests.post(
                f"{relay.url}/webhooks/woocommerce",
                data=body,
                headers=woo_headers(body, "order.created"),
                timeout=5,
            )
        except requests.RequestException:
            return  # refused while stopping: the platform was told nothing was accepted
        if answer.status_code == 202:
            accepted.append(str(80000 + n))

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, n) for n in range(300)]
        time.sleep(0.5)
        code = relay.stop()  # SIGTERM in the middle of the burst
        for future in futures:
            future.result()
    assert code == 0, relay.log.read_text()[-2000:]
    assert accepted, "the burst should have been partly accepted before the stop"

    relay.start()  # same data directory: what was queued is still there
    try:

        def all_delivered() -> bool:
            placed = {r.body["orderId"] for r in fake_api.requests if r.path == "/api/v1/orders"}
            return set(accepted) <= placed

        wait_until(all_delivered, timeout=60, what="every accepted webhook delivered")
    finally:
        assert relay.stop() == 0
