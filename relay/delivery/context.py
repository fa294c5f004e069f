"""Everything a worker process needs, built once per process and shared by its jobs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis import Redis

from relay.delivery.api_gate import ApiGate
from relay.delivery.commerce_api import Client, CommerceClient, SandboxClient
from relay.delivery.deadletters import DeadLetters
from relay.delivery.dispatcher import Dispatcher
from relay.delivery.endings import Endings
from relay.delivery.entity_state import EntityStore
from relay.delivery.planning import Planner
from relay.delivery.processor import EventProcessor
from relay.delivery.product_flush import ProductFlush
from relay.delivery.product_outbox import ProductOutbox
from relay.delivery.recorder import Recorder
from relay.delivery.task import TaskRunner
from relay.delivery.variants import VariantMemory
from relay.event_queue import EventQueue
from relay.inbox import Inbox
from relay.redis_conn import connect
from relay.registry import Registry, default_registry
from relay.runtime.metrics import InstrumentedClient
from relay.runtime.processes import owner_tag
from relay.settings import ConfigError, Settings
from relay.sync_signals import WantedProducts


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    registry: Registry
    owner: str  # this worker's lease (relay/delivery/leases.py)
    events: EventQueue
    processor: EventProcessor  # entries into tasks; answers into outcomes
    dispatcher: Dispatcher  # the inbox, many requests in flight
    products: ProductFlush  # the product outbox's batches
    dead_letters: DeadLetters


def build(
    settings: Settings,
    redis: Redis,
    registry: Registry,
    client: Client | None = None,
    owner: str | None = None,
) -> WorkerContext:
    owner = owner or owner_tag()
    concurrency = settings.delivery_concurrency
    if client is None:
        client = InstrumentedClient(
            SandboxClient(redis)
            if settings.sandbox
            # The senders' connections and a product flush's.
            else CommerceClient.from_settings(settings, pool_size=concurrency + 1)
        )
    events = EventQueue(redis, settings.dedup_window_seconds, settings.job_timeout_seconds)
    store = EntityStore(redis, lock_ttl_seconds=settings.job_timeout_seconds, owner=owner)
    dead_letters = DeadLetters(redis, settings.dlq_retention_days, settings.dlq_max)
    endings = Endings(dead_letters)
    inbox = Inbox(redis)
    # The raw events of waiting product writes outlive any retry schedule (a backstop).
    outbox = ProductOutbox(redis, int(settings.retry.horizon_seconds()) + 86400)
    rng = random.Random()
    products = ProductFlush(settings, store, client, outbox, events, endings, rng)
    processor = EventProcessor(
        settings,
        registry,
        events,
        Planner(store, VariantMemory(redis), WantedProducts(redis, settings.stores)),
        outbox,
        inbox,
        endings,
        rng,
    )
    recorder = Recorder(redis)
    gate = ApiGate(redis, concurrency, rng=rng)
    runner = TaskRunner(store, client, recorder, gate, processor.delivered)
    dispatcher = Dispatcher(
        redis, owner, inbox, processor, runner, products, gate, recorder, endings, concurrency
    )
    return WorkerContext(
        settings, redis, registry, owner, events, processor, dispatcher, products, dead_letters
    )


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
