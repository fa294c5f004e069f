"""What the web process holds: settings, the mapper registry, the Redis-backed queue, ingest's
write and the count of failed webhook authentications."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from relay.event_queue import EventQueue
from relay.intake.acceptor import Acceptor
from relay.intake.auth_throttle import AuthThrottle
from relay.registry import Registry
from relay.settings import Settings


@dataclass
class WebContext:
    settings: Settings
    registry: Registry
    redis: Redis
    events: EventQueue
    acceptor: Acceptor
    auth_throttle: AuthThrottle
