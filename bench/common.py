"""What every benchmark needs: Redis, the fake Commerce API in its own process, signed
WooCommerce bodies, process trees and their memory."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "mappers" / "woocommerce" / "fixtures"
SECRET = "bench-woo-secret"
API_KEY = "bench-api-key"


def order_body(n: int) -> bytes:
    order = json.loads((FIXTURES / "order.processing.guest.json").read_text())
    order.update(id=200000 + n, number=str(200000 + n))
    return json.dumps(order).encode()


def product_body(n: int) -> bytes:
    product = json.loads((FIXTURES / "product.simple.on-sale.json").read_text())
    product.update(id=300000 + n, name=f"Mug {n}", date_modified_gmt="2024-03-01T11:00:00")
    return json.dumps(product).encode()


def signature(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def woo_headers(body: bytes, topic: str = "order.created") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Signature": signature(body),
    }


@contextmanager
def redis_server(workdir: Path, fsync: str | None = None) -> Iterator[RedisServer]:
    """A redis-server as the relay embeds it: append-only, fsync on every write (set
    BENCH_REDIS_FSYNC=everysec to see what that durability costs)."""
    fsync = fsync or os.environ.get("BENCH_REDIS_FSYNC", "always")
    server = RedisServer(workdir / "redis", appendfsync=fsync, unix=True).start()
    try:
        yield server
    finally:
        server.stop()


class FakeApiProcess:
    """tests/fakeapi.py in its own process, so it does not share the benchmark's GIL; with a
    `latency`, every answer comes that many seconds after its request (served concurrently).
    The SDK oracle is off: it would measure the fake, not the relay."""

    def __init__(self, latency: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.latency = latency
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakeapi",
                "--port",
                str(self.port),
                "--latency",
                repr(latency),
                "--no-contract-check",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        wait_http(f"{self.url}/__requests")

    def requests(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/__requests", timeout=30).json()["requests"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def relay_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    env.update(RELAY_WOOCOMMERCE_SECRET=SECRET, RELAY_LOG_LEVEL="WARNING", **extra)
    return env


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_mb(pids: list[int], skip: str = "redis-server") -> dict[str, float]:
    """PSS (shared pages counted once across forked processes) and RSS, summed."""
    pss = rss = 0
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        if skip.encode() in cmdline:
            continue
        pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))
        rss += int(re.search(r"^Rss:\s+(\d+)", rollup, re.M).group(1))
    return {"pss_mb": round(pss / 1024, 1), "rss_mb": round(rss / 1024, 1)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


@contextmanager
def worker_bench(workdir: Path) -> Iterator[tuple[Any, Any, FakeApiProcess]]:
    """Settings, Redis and the fake API for running the real worker in this process."""
    from redis import Redis

    from relay.runtime import logs
    from relay.settings import Settings

    logs.configure("WARNING")
    with redis_server(workdir) as server:
        api = FakeApiProcess()
        settings = Settings(
            commerce_api_url=api.url,
            commerce_api_key=API_KEY,
            redis_url=server.url,
            platform_secrets={"woocommerce": "s"},
        )
        try:
            yield settings, Redis.from_url(server.url), api
        finally:
            api.stop()


class Workers:
    """`relay worker` processes, as `relay worker` runs them in a split deployment."""

    def __init__(
        self,
        workdir: Path,
        count: int,
        redis_url: str,
        api_url: str,
        concurrency: int,
        **settings: str,
    ):
        metrics = workdir / "metrics"
        metrics.mkdir(parents=True, exist_ok=True)
        self.env = relay_env(
            RELAY_REDIS_URL=redis_url,
            RELAY_COMMERCE_API_URL=api_url,
            RELAY_COMMERCE_API_KEY=API_KEY,
            RELAY_DELIVERY_CONCURRENCY=str(concurrency),
            RELAY_WOOCOMMERCE_CURRENCY="EUR",
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
            **settings,
        )
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "relay", "worker"],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]

    def wait_ready(self, redis: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(list(redis.scan_iter("relay:lease:*"))) < len(self.processes):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
