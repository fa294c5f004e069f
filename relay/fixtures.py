"""Mapper fixtures: `<case>.<ext>` (what the platform sends) beside `<case>.expected.json`
(what it must become). Used by the golden test, `relay send` and the end-to-end tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.mapping import Platform
from relay.registry import package_dir

EXPECTED_SUFFIX = ".expected.json"
# How each kind of fixture file is sent: a JSON body, a form body, or a query string.
CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Fixture:
    body: Path
    expected_path: Path

    @property
    def name(self) -> str:
        return self.body.name

    def expected(self) -> dict[str, Any]:
        return json.loads(self.expected_path.read_text())


def expected_path(body: Path) -> Path:
    return body.with_name(body.name.rsplit(".", 1)[0] + EXPECTED_SUFFIX)


def fixtures_dir(platform: Platform) -> Path:
    return package_dir(platform) / "fixtures"


def body_files(platform: Platform) -> list[Path]:
    folder = fixtures_dir(platform)
    return sorted(
        p
        for p in folder.glob("*")
        if p.is_file() and not p.name.endswith(EXPECTED_SUFFIX) and not p.name.startswith(".")
    )


def fixtures(platform: Platform) -> list[Fixture]:
    """Every fixture body with its expected file (which may be missing: the golden test
    then asks for it)."""
    return [Fixture(body, expected_path(body)) for body in body_files(platform)]


def orphan_expected_files(platform: Platform) -> list[Path]:
    """Expected files with no fixture body beside them."""
    have = {expected_path(body) for body in body_files(platform)}
    return sorted(set(fixtures_dir(platform).glob(f"*{EXPECTED_SUFFIX}")) - have)
