"""The store's webhooks: created or repaired by `relay connect`, checked by every reconcile.

A store stops pushing when a webhook is disabled (WooCommerce disables one after a handful
of failed deliveries and never retries them). The relay's webhooks are those whose delivery
URL is the relay's endpoint for the platform: `<url>/webhooks/<platform>`, with the `url`
that `relay connect --url` was given (kept in Redis), or any URL with that path when connect
never ran. A check re-enables a disabled or paused one when the key may write, and reports
it (log, `relay_store_webhooks_reenabled_total`, the admin page); the gap is covered by the
reconcile that runs the check. Its findings are kept in Redis (relay/sync_signals.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from relay import sync_signals
from relay.store_api import StoreAuthError, StoreError, StoreWebhook, StoreWriteRefused

log = logging.getLogger("relay.sync")


def url_key(platform: str) -> str:
    return f"relay:sync:{platform}:webhook_url"


def delivery_url(base: str, platform: str) -> str:
    return f"{base.rstrip('/')}/webhooks/{platform}"


@dataclass
class Health:
    checked_at: float
    delivery_url: str  # the one the relay expects, or "" when connect never ran
    topics: list[str]  # the topics the relay wants
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # the relay's, as found
    missing: list[str] = field(default_factory=list)  # topics without an active webhook
    reenabled: list[str] = field(default_factory=list)  # ids re-enabled by this check
    created: list[str] = field(default_factory=list)  # ids created (connect)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _topics(store: Any) -> list[str]:
    spec = store.platform.store
    return sorted(spec.webhook_topics or store.platform.topics)


def _ours(hook: StoreWebhook, platform: str, expected: str) -> bool:
    if expected:
        return hook.delivery_url.rstrip("/") == expected
    return urlsplit(hook.delivery_url).path.rstrip("/").endswith(f"/webhooks/{platform}")


def _save(store: Any, health: Health) -> None:
    store.redis.hset(sync_signals.WEBHOOK_HEALTH, store.name, json.dumps(health.to_dict()))


def check(store: Any, repair: bool = True) -> Health:
    """The relay's webhooks at the store; disabled or paused ones re-enabled (`repair`).
    A StoreAuthError (the credentials refused) is raised: the run stops on it."""
    raw = store.redis.get(url_key(store.name))
    expected = raw.decode() if raw else ""
    health = Health(time.time(), expected, _topics(store))
    try:
        hooks = [h for h in store.client.webhooks() if _ours(h, store.name, expected)]
    except StoreAuthError:
        raise
    except StoreError as exc:
        health.problems.append(f"could not list the store's webhooks: {exc}")
        _save(store, health)
        return health
    active = set()
    for hook in hooks:
        status = hook.status
        if status != "active" and repair:
            try:
                hook = store.client.update_webhook(hook.id, status="active")
                health.reenabled.append(hook.id)
                store.redis.hincrby(sync_signals.WEBHOOKS_REENABLED, store.name, 1)
                log.warning(
                    "re-enabled a webhook the store had turned off",
                    extra={
                        "platform": store.name,
                        "webhook": hook.id,
                        "topic": hook.topic,
                        "status": status,
                    },
                )
            except StoreWriteRefused:
                health.problems.append(
                    f"webhook {hook.id} ({hook.topic}) is {status}, and the key may not write: "
                    "re-enable it in the store, or give the key Read/Write"
                )
            except StoreError as exc:
                health.problems.append(f"could not re-enable webhook {hook.id}: {exc}")
        health.webhooks.append(
            {"id": hook.id, "topic": hook.topic, "status": hook.status, "was": status}
        )
        if hook.status == "active":
            active.add(hook.topic)
    health.missing = [t for t in health.topics if t not in active]
    if health.missing or health.problems:
        log.warning(
            "the store's webhooks need attention",
            extra={
                "platform": store.name,
                "missing": health.missing or None,
                "problems": health.problems or None,
            },
        )
    _save(store, health)
    return health


def connect(store: Any, base_url: str, secret: str) -> Health:
    """Create the webhooks the relay uses, or repair them (status, secret, API version):
    idempotent, a second run changes nothing but the secret it sets again."""
    target = delivery_url(base_url, store.name)
    store.redis.set(url_key(store.name), target)
    health = Health(time.time(), target, _topics(store))
    version = store.client.api_version
    mine: dict[str, StoreWebhook] = {}
    for hook in store.client.webhooks():
        if hook.delivery_url.rstrip("/") == target and hook.topic in health.topics:
            # One per topic; a second one (made by hand) is left alone, and reported.
            if hook.topic in mine:
                health.problems.append(f"webhook {hook.id} repeats {hook.topic}: delete it")
                continue
            mine[hook.topic] = hook
    for topic in health.topics:
        hook = mine.get(topic)
        if hook is None:
            hook = store.client.create_webhook(topic, target, secret)
            health.created.append(hook.id)
        else:
            was = hook.status
            hook = store.client.update_webhook(
                hook.id, status="active", secret=secret, api_version=version
            )
            if was != "active":
                health.reenabled.append(hook.id)
        health.webhooks.append({"id": hook.id, "topic": hook.topic, "status": hook.status})
    health.missing = [
        t
        for t in health.topics
        if t not in {w["topic"] for w in health.webhooks if w["status"] == "active"}
    ]
    _save(store, health)
    return health
