"""Ingest: accepted signed WooCommerce webhooks per second through gunicorn with the relay's
production settings, against a bare Flask endpoint that only reads the body under the same
gunicorn settings; then p50/p99 latency at half the relay's peak rate.

A third server, the "store" ceiling (bench/bare_app.py --store), is the bare endpoint plus one
Redis write of the body: what any ingest that stores before it answers pays here, whatever
its code. Both Redis durability settings are measured: `always` (the relay's default: a
2xx means the event is on disk) and `everysec` (a 2xx means it is in Redis's memory and on
disk within about a second).

Load comes from wrk (Debian's package) in its own process, one thread, over loopback, each
webhook on its own connection as platforms send them (bench/wrk_bodies.lua).
Runs alternate relay, store, bare, relay, store, bare... and each figure is the median of
the per-round ratios.
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
ROUNDS = 3
EXTRA_ENV: dict[str, str] = {}  # settings for all three servers (`python -m bench --env`)
SERVERS = {  # name: the module gunicorn serves, and the URL that says it is up
    "relay": (["relay", "web"], "/healthz"),
    "store": (["bench.bare_app", "--store"], "/"),
    "bare": (["bench.bare_app"], "/"),
}


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


def _serve(name: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    module, ready = SERVERS[name]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *module],
            env={**env, "RELAY_BIND": f"127.0.0.1:{port}"},
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    wait_http(f"http://127.0.0.1:{port}{ready}")
    return process


def measure(workdir: Path) -> dict[str, Any]:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    bodies = _bodies_file(workdir / "bodies.tsv", 40000)
    result = _measure(workdir / "always", bodies, "always", half_peak=True)
    result["everysec"] = _measure(workdir / "everysec", bodies, "everysec", half_peak=False)
    return result


def _median_ratio(rounds: list[dict[str, Any]], top: str, bottom: str) -> float:
    return round(statistics.median(r[top]["rps"] / r[bottom]["rps"] for r in rounds), 3)


def _measure(workdir: Path, bodies: Path, fsync: str, half_peak: bool) -> dict[str, Any]:
    workdir.mkdir()
    with redis_server(workdir, fsync) as redis:
        env = relay_env(RELAY_REDIS_URL=redis.url, **EXTRA_ENV)
        ports = {name: free_port() for name in SERVERS}
        servers = [_serve(name, ports[name], env, workdir / f"{name}.log") for name in SERVERS]
        urls = {name: f"http://127.0.0.1:{p}/webhooks/woocommerce" for name, p in ports.items()}
        client = Redis.from_url(redis.url)
        try:
            for url in urls.values():
                run_wrk(url, bodies, 1)  # warm-up
            rounds = []
            for _ in range(ROUNDS):
                runs = {}
                for name, url in urls.items():
                    client.flushall()  # fresh bodies again: nothing is a duplicate
                    runs[name] = run_wrk(url, bodies, SECONDS)
                assert runs["relay"]["non_2xx"] == 0, runs["relay"]
                rounds.append(runs)
            paced = None
            if half_peak:
                peak = statistics.median(r["relay"]["rps"] for r in rounds)
                client.flushall()
                connections = 8
                target = peak / 2
                paced = run_wrk(
                    urls["relay"], bodies, SECONDS, connections, connections / target * 1000
                )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)
    result: dict[str, Any] = {
        "redis_fsync": fsync,
        **{f"{name}_rps": [round(r[name]["rps"]) for r in rounds] for name in SERVERS},
        "ratio": _median_ratio(rounds, "relay", "bare"),
        "ratios": [round(r["relay"]["rps"] / r["bare"]["rps"], 3) for r in rounds],
        # The most any ingest that stores before answering gets here, against bare...
        "store_ratio": _median_ratio(rounds, "store", "bare"),
        # ...and how much of that the relay keeps.
        "relay_of_store": _median_ratio(rounds, "relay", "store"),
    }
    if paced is not None:
        result.update(
            half_peak_target_rps=round(target),
            half_peak_rps=round(paced["rps"]),
            p50_ms=paced["p50_ms"],
            p99_ms=paced["p99_ms"],
        )
    return result
