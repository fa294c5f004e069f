"""Ingest: accepted signed WooCommerce webhooks per second through gunicorn with the relay's
production settings (`relay web`), against two ceilings served by gunicorn with exactly the
same settings (bench/bare_app.py):

- "store": a bare Flask endpoint plus one Redis write of the body. What any ingest that
  stores before it answers pays here, whatever its code: the relay's own work is what it
  costs beyond this (the figure that matters, `relay_of_store`).
- "bare": the same endpoint without the write (the web stack's own ceiling).

Every figure is measured in four configurations, in one run:

- each webhook on its own connection, as platforms send them ("close"), or one connection
  reused for many ("keepalive": what a buffering proxy in front of the relay does, and the
  way that shows the relay's own cost, which connection setup otherwise hides);
- Redis's `appendfsync always` (the relay's default: a 2xx means the event is on disk) or
  `everysec` (in Redis's memory, on disk within about a second).

Load comes from wrk (Debian's package) in its own process, one thread, over loopback
(bench/wrk_bodies.lua), every body different so that none is a duplicate. Runs go pair by
pair: each round measures relay, store and bare back to back (the order reversed every
other round) and each ratio is the median of the per-round ratios, with its spread (lowest
and highest). A run during which other processes on the machine took more than
DISTURBED_CORES of CPU (bench/quiet.py) is measured again, up to RETRIES times; if it never
runs quiet it is kept and counted in `disturbed`. Each run first waits (up to
QUIET_WAIT_SECONDS) for a quiet second. Then p50/p99 latency of the relay at half its peak
rate, in each configuration.
"""

from __future__ import annotations

import os
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
from bench.quiet import CpuWatch, wait_for_quiet
from tests.redis_server import free_port

CONNECTIONS = 16
SECONDS = 5
ROUNDS = 5
# Other processes' CPU (in cores, averaged over a run) above which the run is repeated.
DISTURBED_CORES = 0.15
RETRIES = 3
QUIET_WAIT_SECONDS = 120  # the longest wait for a quiet second before each run
FSYNCS = ("always", "everysec")
CONNECTION_MODES = ("close", "keepalive")
EXTRA_ENV: dict[str, str] = {}  # settings for all three servers (`python -m bench --env`)
SERVERS = {  # name: the module gunicorn serves, and the URL that says it is up
    "relay": (["relay", "web"], "/healthz"),
    "store": (["bench.bare_app", "--store"], "/"),
    "bare": (["bench.bare_app"], "/"),
}


def config_name(connection: str, fsync: str) -> str:
    return f"{connection}/{fsync}"


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
    url: str,
    bodies: Path,
    seconds: int,
    connections: int = CONNECTIONS,
    pause_ms: float = 0.0,
    connection: str = "close",
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
            connection,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
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


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def measure(workdir: Path) -> dict[str, Any]:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    bodies = _bodies_file(workdir / "bodies.tsv", 40000)
    configs: dict[str, Any] = {}
    for fsync in FSYNCS:
        configs.update(_measure_fsync(workdir / fsync, bodies, fsync))
    return {"configs": configs}


class _Bench:
    """The three servers on one Redis, and wrk runs against them that are repeated while
    the machine is busy with other work."""

    def __init__(self, urls: dict[str, str], redis: Redis, watch: CpuWatch, bodies: Path):
        self.urls = urls
        self.redis = redis
        self.watch = watch
        self.bodies = bodies
        self.retried = 0
        self.disturbed = 0

    def run(self, name: str, connection: str, **options: Any) -> dict[str, Any]:
        for attempt in range(RETRIES + 1):
            self.redis.flushall()  # fresh bodies again: nothing is a duplicate
            wait_for_quiet(DISTURBED_CORES, QUIET_WAIT_SECONDS)
            self.watch.start()
            result = run_wrk(self.urls[name], self.bodies, connection=connection, **options)
            result["foreign_cores"] = round(self.watch.foreign_cores(), 3)
            if result["foreign_cores"] <= DISTURBED_CORES:
                return result
            if attempt < RETRIES:
                self.retried += 1
        self.disturbed += 1
        return result


def _measure_fsync(workdir: Path, bodies: Path, fsync: str) -> dict[str, Any]:
    workdir.mkdir()
    with redis_server(workdir, fsync) as redis:
        env = relay_env(RELAY_REDIS_URL=redis.url, **EXTRA_ENV)
        ports = {name: free_port() for name in SERVERS}
        servers = {
            name: _serve(name, ports[name], env, workdir / f"{name}.log") for name in SERVERS
        }
        urls = {name: f"http://127.0.0.1:{p}/webhooks/woocommerce" for name, p in ports.items()}
        assert redis.process is not None
        watch = CpuWatch([redis.process.pid, *(s.pid for s in servers.values())])
        bench = _Bench(urls, Redis.from_url(redis.url), watch, bodies)
        results = {}
        try:
            for name in SERVERS:
                for connection in CONNECTION_MODES:
                    run_wrk(urls[name], bodies, 1, connection=connection)  # warm-up
            for connection in CONNECTION_MODES:
                bench.retried = bench.disturbed = 0
                load_before = _load()
                rounds = []
                for n in range(ROUNDS):
                    order = list(SERVERS) if n % 2 == 0 else list(reversed(SERVERS))
                    runs = {name: bench.run(name, connection, seconds=SECONDS) for name in order}
                    assert runs["relay"]["non_2xx"] == 0, runs["relay"]
                    rounds.append(runs)
                peak = statistics.median(r["relay"]["rps"] for r in rounds)
                paced = _half_peak(bench, connection, peak)
                results[config_name(connection, fsync)] = _summary(
                    rounds, paced, peak, bench, fsync, connection, [load_before, _load()]
                )
        finally:
            for server in servers.values():
                server.terminate()
            for server in servers.values():
                server.wait(30)
    return results


def _half_peak(bench: _Bench, connection: str, peak: float) -> dict[str, Any]:
    connections = 8
    pause_ms = connections / (peak / 2) * 1000
    return bench.run(
        "relay", connection, seconds=SECONDS, connections=connections, pause_ms=pause_ms
    )


def _ratios(rounds: list[dict[str, Any]], top: str, bottom: str) -> dict[str, Any]:
    ratios = [r[top]["rps"] / r[bottom]["rps"] for r in rounds]
    return {
        "median": round(statistics.median(ratios), 3),
        "low": round(min(ratios), 3),
        "high": round(max(ratios), 3),
    }


def _summary(
    rounds: list[dict[str, Any]],
    paced: dict[str, Any],
    peak: float,
    bench: _Bench,
    fsync: str,
    connection: str,
    load: list[float],
) -> dict[str, Any]:
    return {
        "redis_fsync": fsync,
        "connection": connection,
        **{f"{name}_rps": [round(r[name]["rps"]) for r in rounds] for name in SERVERS},
        # How much of what storing costs anyway the relay keeps (target >= 0.9)...
        "relay_of_store": _ratios(rounds, "relay", "store"),
        # ...and the two against the web stack's own ceiling.
        "relay_of_bare": _ratios(rounds, "relay", "bare"),
        "store_of_bare": _ratios(rounds, "store", "bare"),
        "half_peak_target_rps": round(peak / 2),
        "half_peak_rps": round(paced["rps"]),
        "p50_ms": paced["p50_ms"],
        "p99_ms": paced["p99_ms"],
        # Runs measured again because other work took CPU, and runs kept although it did.
        "retried_runs": bench.retried,
        "disturbed_runs": bench.disturbed,
        # Other processes' CPU during each run kept, in cores (bench/quiet.py).
        "foreign_cores": {name: [r[name]["foreign_cores"] for r in rounds] for name in SERVERS},
        "load_before_after": load,
    }
