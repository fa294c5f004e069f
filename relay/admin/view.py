"""What the admin page shows, computed from Redis: platform rows, times, readable JSON.

Kept apart from the routes (relay/admin/routes.py) so the rules (when a platform counts as silent,
how a time reads) are plain functions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from redis import Redis

from relay import stats
from relay.delivery.deadletters import DeadLetters
from relay.registry import Registry
from relay.settings import Settings

# A store that sends nothing for this long usually has a webhook that the platform disabled
# after failed deliveries (WooCommerce does so silently), so the page warns about it.
SILENT_AFTER_SECONDS = 6 * 3600


def utc_text(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def ago(timestamp: float | None, now: float | None = None) -> str:
    """ "4 min ago", "3 h 12 min ago", "2 d ago"."""
    if timestamp is None:
        return "never"
    seconds = int((time.time() if now is None else now) - timestamp)
    if seconds < 5:  # also a clock a little ahead of ours
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min ago" if minutes else f"{hours} h ago"
    return f"{seconds // 86400} d ago"


def pretty(value: Any) -> str:
    """JSON indented for reading; a string holding JSON (a raw body) is parsed first. What
    cannot be parsed, or is nested too deeply to indent, is shown as it was stored."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
        return json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=False)
    except (ValueError, RecursionError):
        return value if isinstance(value, str) else "(nested too deeply to show)"


def without_credentials(url: str) -> str:
    """A URL fit to show: any user:password@ part removed."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def one_line(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class PlatformRow:
    name: str
    title: str
    enabled: bool
    stats: stats.PlatformStats
    dead_letters: int
    silent: bool  # enabled, and nothing genuine arrived for SILENT_AFTER_SECONDS (or ever)

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.name,
            "title": self.title,
            "enabled": self.enabled,
            "accepted": s.accepted,
            "duplicate": s.duplicate,
            "ignored": s.ignored,
            "rejected": s.rejected,
            "last_seen": s.last_seen,
            "last_rejected": s.last_rejected,
            "last_rejected_code": s.last_rejected_code,
            "silent": self.silent,
            "dead_letters": self.dead_letters,
        }


def is_silent(enabled: bool, last_seen: float | None, now: float) -> bool:
    if not enabled:
        return False  # a disabled platform is expected to be quiet
    return last_seen is None or now - last_seen > SILENT_AFTER_SECONDS


def platform_rows(
    redis: Redis, registry: Registry, settings: Settings, now: float | None = None
) -> list[PlatformRow]:
    now = time.time() if now is None else now
    letters = DeadLetters(redis)
    rows = []
    for platform, platform_stats in zip(registry, stats.read(redis, registry.names()), strict=True):
        enabled = settings.secret_for(platform.name) is not None
        rows.append(
            PlatformRow(
                name=platform.name,
                title=platform.title,
                enabled=enabled,
                stats=platform_stats,
                dead_letters=letters.count(platform.name),
                silent=is_silent(enabled, platform_stats.last_seen, now),
            )
        )
    return rows


@dataclass(frozen=True)
class QueueState:
    waiting: int  # webhooks stored and waiting for a worker (the inbox)
    scheduled: int  # deliveries waiting for their retry time
    dead_letters: int

    def to_dict(self) -> dict[str, int]:
        return {
            "waiting": self.waiting,
            "scheduled": self.scheduled,
            "dead_letters": self.dead_letters,
        }
