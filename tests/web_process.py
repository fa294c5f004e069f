"""`relay web` (gunicorn with the gevent worker) in a subprocess, for tests about processes
and sockets: slow senders, a hung Redis. Module constants can be cut for the test's sake
(`patches={"relay.intake.gevent_worker.READ_TIMEOUT_SECONDS": 1.0}`), as the process starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import WOO_SECRET, wait_until
from tests.redis_server import free_port


def _script(patches: dict[str, object]) -> str:
    lines = ["import importlib, sys"]
    for name, value in patches.items():
        module, _, attribute = name.rpartition(".")
        lines.append(f"setattr(importlib.import_module({module!r}), {attribute!r}, {value!r})")
    lines += ["from relay.cli import main", "sys.argv = ['relay', 'web']", "main()"]
    return "\n".join(lines)


@contextmanager
def relay_web(
    tmp_path: Path,
    redis_url: str,
    patches: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[int, Path]]:
    """Yields (port, log file) once /healthz answers; stops the process afterwards."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    environ.update(
        RELAY_BIND=f"127.0.0.1:{port}",
        RELAY_REDIS_URL=redis_url,
        RELAY_WOOCOMMERCE_SECRET=WOO_SECRET,
        RELAY_DATA_DIR=str(tmp_path / "data"),
        **(env or {}),
    )
    log = tmp_path / "web.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _script(patches or {})], env=environ, stdout=out, stderr=out
        )

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(up, timeout=30, what="relay web")
        yield port, log
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
