"""Ingest: accepted signed WooCommerce webhooks per second through gunicorn with the relay's
production settings, against a bare Flask endpoint that only reads the body under the same
gunicorn settings; then p50/p99 latency at half the relay's peak rate.

Load comes from wrk (Debian's package) in its own process, one thread, over loopback.
Runs alternate relay, bare, relay, bare... and the figure is the median of the pair ratios.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from redis import Redis

from bench.common import (
    ROOT,
    order_body,
    redis_server,
    relay_env,
    signature,
    wait_http,
)
from tests.redis_server import free_port

CONNECTIONS = 16
SECONDS = 5
PAIRS = 3
EXTRA_ENV: dict[str, str] = {}  # e.g. RELAY_WEB_WORKERS for experiments


def _bodies_file(path: Path, count: int) -> Path:
    with path.open("w") as out:
        for n in range(count):
            body = order_body(n).decode()
            out.write(f"{signature(body.encode())}\t{body}\n")
    return path


def _duration_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, bodies: Path, seconds: int, connections: int = CONNECTIONS, pause_ms: float = 0.0
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk_bodies.lua"),
            url,
            "--",
            str(bodies),
            str(pause_ms),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "p50_ms": _duration_ms(latency["50"]),
        "p99_ms": _duration_ms(latency["99"]),
    }


def _serve(module: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *module],
            env={**env, "RELAY_BIND": f"127.0.0.1:{port}"},
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    wait_http(
        f"http://127.0.0.1:{port}/healthz" if module[0] == "relay" else f"http://127.0.0.1:{port}/"
    )
    return process


def measure(workdir: Path) -> dict[str, Any]:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    bodies = _bodies_file(workdir / "bodies.tsv", 40000)
    with redis_server(workdir) as redis:
        env = relay_env(RELAY_REDIS_URL=redis.url, **EXTRA_ENV)
        relay_port, bare_port = free_port(), free_port()
        relay = _serve(["relay", "web"], relay_port, env, workdir / "relay-web.log")
        bare = _serve(["bench.bare_app"], bare_port, env, workdir / "bare.log")
        client = Redis.from_url(redis.url)
        relay_url = f"http://127.0.0.1:{relay_port}/webhooks/woocommerce"
        bare_url = f"http://127.0.0.1:{bare_port}/webhooks/woocommerce"
        try:
            run_wrk(relay_url, bodies, 1)  # warm-up
            run_wrk(bare_url, bodies, 1)
            pairs = []
            for _ in range(PAIRS):
                client.flushall()  # fresh bodies again: nothing is a duplicate
                relay_run = run_wrk(relay_url, bodies, SECONDS)
                bare_run = run_wrk(bare_url, bodies, SECONDS)
                assert relay_run["non_2xx"] == 0, relay_run
                pairs.append((relay_run, bare_run))
            peak = statistics.median(r["rps"] for r, _ in pairs)
            client.flushall()
            connections = 8
            target = peak / 2
            paced = run_wrk(
                relay_url, bodies, SECONDS, connections, pause_ms=connections / target * 1000
            )
        finally:
            relay.terminate()
            bare.terminate()
            relay.wait(30)
            bare.wait(30)
    ratios = [r["rps"] / b["rps"] for r, b in pairs]
    return {
        "relay_rps": [round(r["rps"]) for r, _ in pairs],
        "bare_rps": [round(b["rps"]) for _, b in pairs],
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
        "half_peak_target_rps": round(target),
        "half_peak_rps": round(paced["rps"]),
        "p50_ms": paced["p50_ms"],
        "p99_ms": paced["p99_ms"],
    }
