"""What the web process holds: settings, the mapper registry, the Redis-backed queue and
the count of failed webhook authentications."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from relay.auth_throttle import AuthThrottle
from relay.event_queue import EventQueue
from relay.registry import Registry
from relay.settings import Settings


@dataclass
class WebContext:
    settings: Settings
    registry: Registry
    redis: Redis
    events: EventQueue
    auth_throttle: AuthThrottle
