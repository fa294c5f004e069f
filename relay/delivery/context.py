"""Everything a worker process needs, built once per process and shared by its jobs."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from relay.commerce_api import Client, CommerceClient, SandboxClient
from relay.deadletters import DeadLetters
from relay.entity_state import EntityStore
from relay.event_queue import EventQueue
from relay.inbox import Inbox
from relay.metrics import InstrumentedClient
from relay.planning import Planner
from relay.processing import EventProcessor
from relay.product_outbox import ProductOutbox
from relay.redis_conn import connect
from relay.registry import Registry, default_registry
from relay.settings import ConfigError, Settings
from relay.variants import VariantMemory


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    registry: Registry
    processor: EventProcessor


def build(
    settings: Settings, redis: Redis, registry: Registry, client: Client | None = None
) -> WorkerContext:
    if client is None:
        client = InstrumentedClient(
            SandboxClient(redis)
            if settings.sandbox
            else CommerceClient(
                settings.commerce_api_url,
                settings.commerce_api_key or "",
                settings.api_timeout_seconds,
            )
        )
    events = EventQueue(redis, settings.dedup_window_seconds, settings.job_timeout_seconds)
    store = EntityStore(redis, lock_ttl_seconds=settings.job_timeout_seconds)
    processor = EventProcessor(
        settings,
        registry,
        client,
        events,
        DeadLetters(redis, settings.dlq_retention_days, settings.dlq_max),
        store,
        Planner(store, VariantMemory(redis)),
        # The raw events of waiting product writes outlive any retry schedule (a backstop).
        ProductOutbox(redis, int(settings.retry.horizon_seconds()) + 86400),
        Inbox(redis),
    )
    return WorkerContext(settings, redis, registry, processor)


_current: WorkerContext | None = None


def install(context: WorkerContext | None) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    """This process's context, built from the environment on first use."""
    global _current
    if _current is None:
        registry = default_registry()
        settings = Settings.from_env(platforms=registry.settings_specs())
        if not settings.redis_url:
            raise ConfigError("RELAY_REDIS_URL: a worker needs the Redis URL")
        _current = build(settings, connect(settings.redis_url, socket_timeout=5.0), registry)
    return _current
