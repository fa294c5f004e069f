"""The whole relay as a merchant runs it (`relay run`: gunicorn, a worker, embedded Redis)
against the fake Commerce API in its own process:

- end to end: p50/p99 from sending a webhook to the API receiving its request, at a
  moderate steady rate;
- footprint: memory of the relay's processes (web and worker; the embedded redis-server
  excluded) when idle, and again after 10,000 events. PSS counts the pages that forked
  processes share once; RSS would count them in every process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    API_KEY,
    ROOT,
    FakeApiProcess,
    memory_mb,
    order_body,
    percentile,
    process_tree,
    relay_env,
    wait_http,
    woo_headers,
)
from tests.redis_server import free_port

RATE = 50  # webhooks per second for the latency figure
SECONDS = 10
MANY = 10_000


class RelayRun:
    def __init__(self, workdir: Path, api: FakeApiProcess):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = relay_env(
            RELAY_BIND=f"127.0.0.1:{self.port}",
            RELAY_DATA_DIR=str(workdir / "data"),
            RELAY_COMMERCE_API_URL=api.url,
            RELAY_COMMERCE_API_KEY=API_KEY,
        )
        with (workdir / "relay-run.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "run"], env=env, cwd=ROOT, stdout=log, stderr=log
            )
        wait_http(f"{self.url}/readyz")

    def post(self, n: int) -> float:
        body = order_body(n)
        sent = time.time()
        answer = requests.post(
            f"{self.url}/webhooks/woocommerce", data=body, headers=woo_headers(body), timeout=10
        )
        assert answer.status_code == 202, answer.text
        return sent

    def memory(self) -> dict[str, float]:
        return memory_mb(process_tree(self.process.pid))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def _arrivals(api: FakeApiProcess) -> dict[str, float]:
    return {
        r["ids"][0]: r["at"] for r in api.requests() if r["path"] == "/api/v1/orders" and r["ids"]
    }


def measure(workdir: Path) -> dict[str, Any]:
    api = FakeApiProcess()
    relay = RelayRun(workdir, api)
    try:
        time.sleep(5)  # settle: imports done, workers waiting
        idle = relay.memory()

        sent: dict[str, float] = {}
        started = time.monotonic()
        for n in range(RATE * SECONDS):
            due = started + n / RATE
            time.sleep(max(due - time.monotonic(), 0))
            sent[str(200000 + n)] = relay.post(n)
        deadline = time.monotonic() + 30
        while len(_arrivals(api)) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        arrived = _arrivals(api)
        latencies = [(arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(relay.post, range(100_000, 100_000 + MANY)))
        deadline = time.monotonic() + 300
        while len(_arrivals(api)) < len(sent) + MANY and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)
        after = relay.memory()
        delivered_many = len(_arrivals(api)) - len(sent)
    finally:
        relay.stop()
        api.stop()
    return {
        "e2e": {
            "rate_per_second": RATE,
            "events": len(sent),
            "delivered": len(latencies),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
        },
        "footprint": {
            "idle": idle,
            "after_events": after,
            "events": MANY,
            "delivered": delivered_many,
        },
    }
