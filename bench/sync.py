"""Sync: a backfill of a whole store, from the fake WooCommerce store to the fake Commerce API.

The store (tests/fakestore.py in its own process) holds 10,000 products (a third of them
variable, with 3 variations each), 20,000 customers and 50,000 orders (half of them guests').
`relay sync woocommerce --orders-since 2020-01-01` runs as a real process with the store's
pacing lifted (RELAY_WOOCOMMERCE_MAX_RPS=1000: the default 2/s is for real shops), and two
real `relay worker` processes (RELAY_DELIVERY_CONCURRENCY=32) deliver what it pushes to a
fake Commerce API answering after `latency` (100 ms).

Figures: the time to the last request delivered, items a second per phase (rows read from
the store over the phase's own time), the peak memory of the sync process and of each
worker (RSS of the process, and PSS of the worker with the scheduler RQ forks), the store
requests, and the Commerce API requests by endpoint (products batched 100 per request).
`BENCH_SYNC_SCALE=0.1` runs a tenth of the store (a quick look, not the figure).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from bench.common import (
    ROOT,
    FakeApiProcess,
    Workers,
    memory_mb,
    process_tree,
    redis_server,
    wait_http,
)
from relay.inbox import Inbox
from relay.sync.checkpoints import Checkpoints
from tests.fakestore import KEY, SECRET
from tests.redis_server import free_port

PRODUCTS, CUSTOMERS, ORDERS = 10_000, 20_000, 50_000
WORKERS = 2
CONCURRENCY = 32
LATENCY = 0.1
TIMEOUT_SECONDS = 40 * 60


class StoreProcess:
    def __init__(self, products: int, customers: int, orders: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakestore",
                "--port",
                str(self.port),
                "--products",
                str(products),
                "--customers",
                str(customers),
                "--orders",
                str(orders),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        wait_http(f"{self.url}/__stats", timeout=300)

    def requests(self) -> int:
        return int(requests.get(f"{self.url}/__stats", timeout=30).json()["requests"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Peaks:
    """Samples the memory of the sync process and of each worker, twice a second."""

    def __init__(self, sync_pid: int, worker_pids: list[int]):
        self.sync_pid, self.worker_pids = sync_pid, worker_pids
        self.sync_rss = 0.0
        self.worker_rss = [0.0] * len(worker_pids)  # the worker process itself
        self.worker_pss = [0.0] * len(worker_pids)  # with the scheduler it forks
        self.sync_done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            if not self.sync_done.is_set():
                self.sync_rss = max(self.sync_rss, memory_mb([self.sync_pid])["rss_mb"])
            for n, pid in enumerate(self.worker_pids):
                self.worker_rss[n] = max(self.worker_rss[n], memory_mb([pid])["rss_mb"])
                self.worker_pss[n] = max(self.worker_pss[n], memory_mb(process_tree(pid))["pss_mb"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _delivered(redis: Redis, api: FakeApiProcess, quiet_seconds: float = 3.0) -> list[dict]:
    """Wait until nothing waits (inbox, product outbox, jobs) and the API heard nothing new
    for `quiet_seconds`; the API's requests."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        idle = (
            Inbox(redis).waiting() == 0
            and redis.hlen("relay:outbox:products") == 0
            and redis.llen("rq:queue:relay") == 0
        )
        count = len(api.requests())
        if count != last:
            last, since = count, time.monotonic()
        elif idle and time.monotonic() - since >= quiet_seconds:
            return api.requests()
        time.sleep(0.5)
    raise RuntimeError("delivery did not finish")


def _phases(redis: Redis) -> dict[str, Any]:
    checkpoints = Checkpoints(redis, "woocommerce", "backfill")
    run = checkpoints.load()
    assert run is not None
    out = {}
    for phase, state in zip(run.phases, checkpoints.phases(run), strict=True):
        seconds = (state.finished_at or 0) - (state.started_at or 0)
        out[phase.name] = {
            "read": state.scanned,
            "pushed": state.pushed,
            "seconds": round(seconds, 1),
            "items_per_second": round(state.scanned / seconds, 1) if seconds > 0 else None,
        }
    out["status"] = run.status
    return out


def measure(workdir: Path, latency: float = LATENCY) -> dict[str, Any]:
    scale = float(os.environ.get("BENCH_SYNC_SCALE", "1"))
    counts = [max(int(n * scale), 10) for n in (PRODUCTS, CUSTOMERS, ORDERS)]
    with redis_server(workdir) as server:
        redis = Redis.from_url(server.url)
        api = FakeApiProcess(latency)
        store = StoreProcess(*counts)
        workers = Workers(
            workdir,
            WORKERS,
            server.url,
            api.url,
            CONCURRENCY,
            RELAY_WOOCOMMERCE_STORE_URL=store.url,
            RELAY_WOOCOMMERCE_CONSUMER_KEY=KEY,
            RELAY_WOOCOMMERCE_CONSUMER_SECRET=SECRET,
            RELAY_WOOCOMMERCE_MAX_RPS="1000",
            RELAY_RECONCILE_INTERVAL="0",
        )
        env = workers.env
        sync = None
        try:
            workers.wait_ready(redis)
            started = time.monotonic()
            sync = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relay",
                    "sync",
                    "woocommerce",
                    "--orders-since",
                    "2020-01-01",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            peaks = Peaks(sync.pid, [w.pid for w in workers.processes])
            code = sync.wait(TIMEOUT_SECONDS)
            peaks.sync_done.set()
            synced = time.monotonic() - started
            arrived = _delivered(redis, api)
            total = time.monotonic() - started - 3.0  # the quiet wait
            peaks.stop()
        finally:
            if sync is not None and sync.poll() is None:
                sync.kill()
            workers.stop()
        by_path = Counter(r["path"] for r in arrived)
        product_ids = {i for r in arrived if r["path"] == "/api/v1/products" for i in r["ids"]}
        result = {
            "store": {"products": counts[0], "customers": counts[1], "orders": counts[2]},
            "latency_ms": round(latency * 1000),
            "workers": WORKERS,
            "concurrency": CONCURRENCY,
            "sync_exit": code,
            "sync_seconds": round(synced, 1),
            "total_seconds": round(total, 1),
            "phases": _phases(redis),
            "store_requests": store.requests(),
            "api_requests": dict(by_path),
            "api_requests_total": len(arrived),
            "products_sent": len(product_ids),
            "memory_mb": {
                "sync_rss_peak": peaks.sync_rss,
                "worker_rss_peak": peaks.worker_rss,
                "worker_pss_peak_with_scheduler": peaks.worker_pss,
            },
        }
        store.stop()
        api.stop()
        return result
