"""Product writes: the outbox's batches, up to 100 products per `POST /api/v1/products`.

A flush takes the products lock (one flush at a time, across workers), decides every write
with the entity rules against the state read once for the whole batch, sends the deletes
and then the upserts, 100 at a time. One bad product must not sink the other 99: after a
permanent error a batch is retried one product at a time to find it. A write that raises
(not an answer of the API) is a dead letter alone. A transient failure stops the batch; what
is left is flushed again on the retry schedule.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from relay import sync_signals
from relay.delivery.commerce_api import ApiRequest, Client, Outcome, product_path
from relay.delivery.endings import Endings, retry_delay
from relay.delivery.entity_rules import Guard, attempting, decide, delivered, fingerprint, skipped
from relay.delivery.entity_state import EntityStore, LockTimeout
from relay.delivery.failures import describe, not_ours
from relay.delivery.product_outbox import BATCH_SIZE, ProductOutbox, ProductWrite
from relay.event_queue import EventQueue
from relay.runtime import metrics
from relay.settings import Settings

log = logging.getLogger("relay.worker")


class ProductFlush:
    def __init__(
        self,
        settings: Settings,
        store: EntityStore,
        client: Client,
        outbox: ProductOutbox,
        events: EventQueue,
        endings: Endings,
        rng: random.Random,
    ):
        self.settings = settings
        self.store = store
        self.client = client
        self.outbox = outbox
        self.events = events
        self.endings = endings
        self.rng = rng

    def flush_products(
        self, batch_id: str, attempt: int = 1, first_attempt_at: float | None = None
    ) -> str:
        first_attempt_at = first_attempt_at or time.time()
        if not self.outbox.take(batch_id):
            return "nothing_to_flush"
        try:
            with self.store.lock("products", wait_seconds=10.0):
                failure = self._flush(batch_id, self.outbox.batch(batch_id))
        except LockTimeout:
            failure = Outcome(
                ok=False, transient=True, retry_after=1.0, error="another flush holds the products"
            )
        left = self.outbox.batch(batch_id)
        if not left:
            self.outbox.drop(batch_id)
            return "delivered"
        assert failure is not None
        if attempt < self.settings.retry.max_attempts:
            delay = retry_delay(self.settings.retry, attempt, failure.retry_after, self.rng)
            self.events.enqueue_flush(batch_id, attempt + 1, first_attempt_at, delay_seconds=delay)
            metrics.DELIVERIES.labels("products", "retry").inc(len(left))
            log.warning(
                "product batch retry scheduled",
                extra={
                    "batch": batch_id,
                    "products": len(left),
                    "error": failure.error,
                    "attempt": attempt,
                    "retry_in": round(delay, 1),
                },
            )
            return "retrying"
        self._dead_writes(left, "retries_exhausted", failure, attempt, first_attempt_at)
        self.outbox.drop(batch_id)
        return "dead_letter"

    def _flush(self, batch_id: str, writes: list[ProductWrite]) -> Outcome | None:
        """Send a batch; returns the transient failure that stopped it, if any. State is
        read and written for the whole batch at once (each write is an fsync). A write
        that raises while it is decided or sent is dead-lettered alone."""
        guards: dict[str, Guard] = {}
        for write in writes:
            try:
                guards[write.product_id] = Guard.from_dict(write.guard)
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
        state = self.store.load_many(g.entity for g in guards.values())
        kept: dict[str, dict[str, str]] = {}
        skipped_ids, deletes, upserts = [], [], []
        for write in writes:
            guard = guards.get(write.product_id)
            if guard is None:
                continue
            try:
                decision = decide(guard, state[guard.entity])
                if not decision.send:
                    kept[guard.entity] = skipped(guard, decision, state[guard.entity])
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
                continue
            if not decision.send:
                skipped_ids.append(write.product_id)
                metrics.DELIVERIES.labels("products", "skipped").inc()
                log.info(
                    "skipped",
                    extra={
                        "event_id": write.event["id"],
                        "entity": guard.entity,
                        "reason": decision.reason,
                    },
                )
            else:
                (deletes if write.op == "delete" else upserts).append(write)
        self.store.update_many(kept)
        self.outbox.done(batch_id, skipped_ids)
        for write in deletes:
            guard = guards[write.product_id]
            try:
                outcome = self.client.send(
                    ApiRequest("DELETE", product_path(write.product_id), None, guard.entity)
                )
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
                continue
            if outcome.transient:
                return outcome
            if outcome.ok:
                self.store.update(guard.entity, delivered(guard, state[guard.entity]))
            else:
                self._dead_writes([write], "permanent_error", outcome, 1, None)
            self.outbox.done(batch_id, [write.product_id])
        for start in range(0, len(upserts), BATCH_SIZE):
            failure = self._send_products(batch_id, upserts[start : start + BATCH_SIZE], state)
            if failure is not None:
                return failure
        return None

    def _send_products(
        self, batch_id: str, chunk: list[ProductWrite], state: dict[str, dict[str, str]]
    ) -> Outcome | None:
        guards = [Guard.from_dict(w.guard) for w in chunk]  # read once already in _flush
        try:
            request = products_request(chunk)
            self.store.update_many({g.entity: attempting(g, state[g.entity]) for g in guards})
            outcome = self.client.send(request)
        except Exception as exc:
            if not_ours(exc):
                raise
            if len(chunk) > 1:  # find the write that raises; the others go out
                return self._one_by_one(batch_id, chunk, state)
            self._broken_writes(batch_id, chunk, exc)
            return None
        if outcome.ok:
            self.store.update_many({g.entity: delivered(g, state[g.entity]) for g in guards})
            self.outbox.done(batch_id, [w.product_id for w in chunk])
            metrics.DELIVERIES.labels("products", "delivered").inc(len(chunk))
            self._count_found(chunk)
            now = time.time()
            for write in chunk:
                metrics.EVENT_DELAY.observe(max(now - write.event["received_at"], 0.0))
            log.info(
                "products delivered",
                extra={
                    "products": len(chunk),
                    "status": outcome.status,
                    "duration": outcome.duration,
                },
            )
            return None
        if outcome.transient:
            return outcome
        if len(chunk) > 1:  # one bad product must not sink the other 99: find it
            return self._one_by_one(batch_id, chunk, state)
        self._dead_writes(chunk, "permanent_error", outcome, 1, None)
        self.outbox.done(batch_id, [chunk[0].product_id])
        return None

    def _count_found(self, chunk: list[ProductWrite]) -> None:
        """Products of reconcile runs that were really sent: what webhooks had missed."""
        found: dict[tuple[str, str], int] = defaultdict(int)
        for write in chunk:
            origin = sync_signals.reconciled(write.event)
            if origin is not None:
                found[origin] += 1
        if found:
            pipe = self.store.redis.pipeline(transaction=False)
            for (platform, run_id), count in found.items():
                sync_signals.count_found(pipe, platform, run_id, "product", count)
            pipe.execute()

    def _one_by_one(
        self, batch_id: str, chunk: list[ProductWrite], state: dict[str, dict[str, str]]
    ) -> Outcome | None:
        for write in chunk:
            failure = self._send_products(batch_id, [write], state)
            if failure is not None:
                return failure
        return None

    def _broken_writes(self, batch_id: str, writes: Sequence[ProductWrite], exc: Exception) -> None:
        """Writes that raised (not an answer of the API): dead letters, out of the batch."""
        if not_ours(exc):
            raise exc
        failure = Outcome(ok=False, error=describe(exc))
        self._dead_writes(writes, "processing_error", failure, 1, None)
        self.outbox.done(batch_id, [w.product_id for w in writes])

    def _dead_writes(
        self,
        writes: Sequence[ProductWrite],
        reason: str,
        outcome: Outcome,
        attempts: int,
        first_attempt_at: float | None,
    ) -> None:
        metrics.DELIVERIES.labels("products", "dead_letter").inc(len(writes))
        by_event: dict[str, list[ProductWrite]] = defaultdict(list)
        for write in writes:
            by_event[write.event["id"]].append(write)
        for group in by_event.values():
            event, note = self.outbox.raw_event(group[0])
            self.endings.dead(
                event,
                reason,
                outcome.error + note,
                pending=[_pending(w) for w in group],
                response=outcome.to_dict(),
                attempts=attempts,
                first_attempt_at=first_attempt_at,
            )


def _pending(write: ProductWrite) -> dict[str, Any]:
    """A write as a dead letter's pending request (nothing computed: it may be the one
    that raised)."""
    upsert = write.op == "upsert"
    return {
        "method": "POST" if upsert else "DELETE",
        "path": "/api/v1/products" if upsert else product_path(write.product_id),
        "body": {"products": [write.payload]} if upsert else None,
        "entity": f"product:{write.product_id}",
        "guard": write.guard,
        "key": "",
    }


def products_request(writes: Sequence[ProductWrite]) -> ApiRequest:
    payloads = [w.payload for w in writes]
    return ApiRequest(
        "POST",
        "/api/v1/products",
        {"products": payloads},
        f"products:{len(payloads)}",
        key=f"products.{fingerprint(payloads)}",
    )
