"""What the web process holds: settings, the mapper registry and the Redis-backed queue."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from relay.event_queue import EventQueue
from relay.registry import Registry
from relay.settings import Settings


@dataclass
class WebContext:
    settings: Settings
    registry: Registry
    redis: Redis
    events: EventQueue
