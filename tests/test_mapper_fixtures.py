"""The golden test: every mapper over every fixture beside it.

A platform's `fixtures/` folder holds pairs: `<case>.<ext>` is what the platform sends, and
`<case>.expected.json` says what it must become. The extension says how it is sent:
`.json` a JSON body, `.form` a form-encoded body, `.query` a query string (GET, no body).

    {"topic": "order.created",            # required
     "options": {"currency": "EUR"},      # the merchant's mapper options, if any
     "received_at": "2024-03-05T10:00:00Z",  # when the relay got it (default: 1970)
     "content_type": "...", "query": "...", "headers": {...},   # when the case needs them
     "records": [...]}                    # or "ignored": "<part of the reason>"

New platforms and new fixtures are picked up without touching this file.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from relay.events import RawEvent
from relay.fixtures import CONTENT_TYPES, Fixture, fixtures, orphan_expected_files
from relay.mapping import IgnoreEvent, Platform
from relay.registry import default_registry
from relay.schemas import record_errors


def _cases() -> list:
    return [
        pytest.param(platform, fixture, id=f"{platform.name}/{fixture.name}")
        for platform in default_registry()
        for fixture in fixtures(platform)
    ]


def _received_at(expected: dict) -> float:
    when = expected.get("received_at")
    return datetime.fromisoformat(when).timestamp() if when else 0.0


def _event(platform: Platform, fixture: Fixture, expected: dict) -> RawEvent:
    raw = fixture.body.read_bytes()
    as_query = fixture.body.suffix == ".query"
    return RawEvent(
        id="fixture",
        platform=platform.name,
        topic=expected["topic"],
        received_at=_received_at(expected),
        body=b"" if as_query else raw,
        content_type=expected.get("content_type", CONTENT_TYPES.get(fixture.body.suffix, "")),
        query=raw.decode().strip() if as_query else expected.get("query", ""),
        headers={k.lower(): v for k, v in expected.get("headers", {}).items()},
    )


@pytest.mark.parametrize(("platform", "fixture"), _cases())
def test_fixture_maps_to_expected_records(platform: Platform, fixture: Fixture):
    assert fixture.expected_path.exists(), (
        f"write {fixture.expected_path.name}: what must {fixture.name} become?"
    )
    expected = fixture.expected()
    event = _event(platform, fixture, expected)
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
        assert orphan_expected_files(platform) == []


def test_every_platform_has_fixtures():
    for platform in default_registry():
        assert any(f.expected_path.exists() for f in fixtures(platform)), (
            f"{platform.name} has no fixtures"
        )
