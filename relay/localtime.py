"""Local times without an offset (postback platforms send the account's wall clock) to the
UTC ISO 8601 the Commerce API wants, given the merchant's configured IANA zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relay.mapping import MappingError


def zone(name: str, setting: str) -> ZoneInfo:
    """The zone named by a mapper option; a MappingError naming the setting otherwise (the
    event is dead-lettered and replayable once the setting is fixed)."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f"{setting} {name!r} is not an IANA time zone (for example America/New_York)"
        ) from None


def utc_iso(moment: datetime, local_zone: ZoneInfo) -> str:
    """`2024-03-05T13:02:11Z`. A naive time is read in `local_zone`; in the hour a clock
    change repeats, the first occurrence is taken."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
