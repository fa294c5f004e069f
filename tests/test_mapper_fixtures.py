"""The golden test: every mapper over every fixture beside it.

A platform's `fixtures/` folder holds pairs: `<case>.<ext>` is what the platform sends, and
`<case>.expected.json` says what it must become. The extension says how it is sent:
`.json` a JSON body, `.form` a form-encoded body, `.query` a query string (GET, no body).

    {"topic": "order.created",            # required
     "options": {"currency": "EUR"},      # the merchant's mapper options, if any
     "content_type": "...", "query": "...", "headers": {...},   # when the case needs them
     "records": [...]}                    # or "ignored": "<part of the reason>"

New platforms and new fixtures are picked up without touching this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.events import RawEvent
from relay.mapping import IgnoreEvent, Platform
from relay.registry import default_registry, package_dir
from relay.schemas import record_errors

EXPECTED = ".expected.json"


def _cases() -> list:
    cases = []
    for platform in default_registry():
        folder = package_dir(platform) / "fixtures"
        for path in sorted(folder.glob("*")):
            if path.name.endswith(EXPECTED) or path.name.startswith("."):
                continue
            cases.append(pytest.param(platform, path, id=f"{platform.name}/{path.name}"))
    return cases


def _expected_path(body_path: Path) -> Path:
    return body_path.with_name(body_path.name.rsplit(".", 1)[0] + EXPECTED)


CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}


def _event(platform: Platform, body_path: Path, expected: dict) -> RawEvent:
    raw = body_path.read_bytes()
    as_query = body_path.suffix == ".query"
    return RawEvent(
        id="fixture",
        platform=platform.name,
        topic=expected["topic"],
        received_at=0.0,
        body=b"" if as_query else raw,
        content_type=expected.get("content_type", CONTENT_TYPES.get(body_path.suffix, "")),
        query=raw.decode().strip() if as_query else expected.get("query", ""),
        headers={k.lower(): v for k, v in expected.get("headers", {}).items()},
    )


@pytest.mark.parametrize(("platform", "body_path"), _cases())
def test_fixture_maps_to_expected_records(platform: Platform, body_path: Path):
    expected_path = _expected_path(body_path)
    assert expected_path.exists(), f"write {expected_path.name}: what must {body_path.name} become?"
    expected = json.loads(expected_path.read_text())
    event = _event(platform, body_path, expected)
    options = expected.get("options", {})

    if "ignored" in expected:
        with pytest.raises(IgnoreEvent) as ignored:
            platform.map_event(event, options)
        assert expected["ignored"] in ignored.value.reason
        return

    records = platform.map_event(event, options)
    assert [record.to_dict() for record in records] == expected["records"]
    for record in records:
        assert record_errors(record) == {}, f"{record.kind} record is not valid for the API"


def test_every_expected_file_has_its_fixture():
    for platform in default_registry():
        folder = package_dir(platform) / "fixtures"
        for expected_path in folder.glob(f"*{EXPECTED}"):
            stem = expected_path.name[: -len(EXPECTED)]
            assert list(folder.glob(f"{stem}.*")) != [expected_path], (
                f"{expected_path} has no fixture body beside it"
            )


def test_every_platform_has_fixtures():
    for platform in default_registry():
        assert _cases(), "no fixtures at all"
        folder = package_dir(platform) / "fixtures"
        assert any(folder.glob(f"*{EXPECTED}")), f"{platform.name} has no fixtures"
