"""A mapper installed as a package (tests/oot_mapper) is found without touching relay/:
listed by `relay mappers`, served at /webhooks/<name>, and run by the golden test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "tests" / "oot_mapper"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """Install the package (a real wheel build) into a folder; an env that sees it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT)])
    return env


TOKEN = "demoshop-token-5c1f0e9a"  # token platforms refuse short tokens at start-up


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_relay_mappers_lists_the_installed_platform(installed):
    result = run({**installed, "RELAY_DEMOSHOP_TOKEN": TOKEN}, "-m", "relay", "mappers")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("demoshop"))
    assert "enabled" in line and "/webhooks/demoshop" in line


def test_golden_test_runs_its_fixtures_unasked(installed):
    result = run(
        installed,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_mapper_fixtures.py",
        "-k",
        "demoshop",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_ingest_serves_it(installed, redis_server):
    script = (
        "from relay.app import create_app\n"
        "app = create_app()\n"
        "c = app.test_client()\n"
        "body = open('tests/oot_mapper/relay_demoshop/fixtures/sale.json', 'rb').read()\n"
        f"ok = c.post('/webhooks/demoshop', data=body, headers={{'X-Relay-Token': '{TOKEN}'}})\n"
        "bad = c.post('/webhooks/demoshop', data=body, headers={'X-Relay-Token': 'nope'})\n"
        "print(ok.status_code, bad.status_code)\n"
    )
    env = {**installed, "RELAY_DEMOSHOP_TOKEN": TOKEN, "RELAY_REDIS_URL": redis_server.url}
    result = run(env, "-c", script)
    assert result.stdout.split() == ["202", "401"], result.stderr
