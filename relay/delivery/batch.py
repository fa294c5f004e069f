"""Sending guarded requests for many events at once, with a handful of Redis round trips.

For a chunk of events (or one event's retry) the worker:

    1. takes the lock of every entity involved          one round trip
    2. reads their state                                 one round trip
    3. decides each request in order with the rules, on a copy of the state that assumes
       the requests before it succeed; writes the attempt marks  one round trip
    4. sends what is to be sent, in order
    5. writes what was delivered and releases the locks  one round trip

Each Redis write is fsynced before Redis answers (a 2xx to a platform means "on disk"),
so writes are batched per chunk rather than made per request.

When a send fails, nothing after it that the failure could change goes out in this round:
after a transient failure (the API is down, slow, rate limiting) the rest of the chunk
waits for the same retry time; after a permanent one, the later requests of the same
entity are decided again on a short retry, against the state as it really is.

An exception while one event's requests are decided or sent is that event's alone: its
result carries the error (the caller dead-letters it), what it had assumed is undone, and
the other events go on. Only Redis failing and RQ's job timeout stop the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from relay.delivery.commerce_api import ApiRequest, Client, Outcome
from relay.delivery.entity_rules import Guard, attempting, decide, delivered, skipped
from relay.delivery.entity_state import EntityStore
from relay.delivery.failures import describe, not_ours
from relay.delivery.planning import effect_key
from relay.events import RawEvent
from relay.runtime import metrics

log = logging.getLogger("relay.worker")
BUSY_RETRY_SECONDS = 1.0  # another worker holds an entity: try again shortly
RECHECK_SECONDS = 1.0  # decided on an assumption that proved false: decide again


@dataclass
class Item:
    """One event's requests still to deliver, and how far its attempts have come."""

    event: RawEvent
    pending: list[ApiRequest]
    attempt: int = 1
    first_attempt_at: float = 0.0


@dataclass
class Result:
    """What became of an item: delivered, or what is left and why."""

    item: Item
    delivered: bool = False
    remaining: list[ApiRequest] = field(default_factory=list)
    outcome: Outcome | None = None  # the failure, when there is one
    retry_after: float | None = None  # set when the retry is a re-check, not a failure
    error: str | None = None  # an exception while deciding or sending: a processing error

    def broken(self, exc: Exception) -> None:
        if not_ours(exc):
            raise exc
        self.remaining = list(self.item.pending)
        self.error = describe(exc)


def _announcement(request: ApiRequest) -> ApiRequest:
    """The `placed` event an order needs before its first fulfilled/cancelled/refunded."""
    body = {k: v for k, v in (request.body or {}).items() if k != "refundAmountCents"}
    body["status"] = "placed"
    guard = {**(request.guard or {}), "status": "placed"}
    guard.pop("refund", None)
    return ApiRequest(
        request.method,
        request.path,
        body,
        request.entity,
        guard,
        effect_key(Guard.from_dict(guard)),
    )


def _names(guard: Guard) -> list[str]:
    return [guard.entity, guard.related] if guard.related else [guard.entity]


@dataclass
class _Send:
    item: Item
    request: ApiRequest
    guard: Guard | None


@dataclass
class _Decisions:
    """One item's decisions, made on its own copy of the state (with what the items before
    it assume): merged into the round only when every request of the item is decided."""

    state: dict[str, dict[str, str]]
    marks: dict[str, dict[str, str]] = field(default_factory=dict)
    sends: list[_Send] = field(default_factory=list)
    skips: list[tuple[ApiRequest, str]] = field(default_factory=list)

    def add(self, item: Item, request: ApiRequest, guard: Guard | None) -> None:
        if guard is None:
            self.sends.append(_Send(item, request, None))
            return
        current = self.state.setdefault(guard.entity, {})
        related = self.state.get(guard.related, {}) if guard.related else {}
        decision = decide(guard, current, related)
        if not decision.send:
            kept = skipped(guard, decision, current)
            current.update(kept)
            self.marks.setdefault(guard.entity, {}).update(kept)
            self.skips.append((request, decision.reason))
            return
        if decision.announce_first:
            placed = _announcement(request)
            self.sends.append(_Send(item, placed, Guard.from_dict(placed.guard or {})))
            current.update(delivered(Guard.from_dict(placed.guard or {}), current))
        mark = attempting(guard, current)
        current.update(mark)
        self.marks.setdefault(guard.entity, {}).update(mark)
        self.sends.append(_Send(item, request, guard))
        # Assume success for what follows in this chunk; a failure below stops
        # everything that depended on this assumption.
        current.update(delivered(guard, current))


class DeliveryBatch:
    def __init__(
        self,
        store: EntityStore,
        client: Client,
        on_delivered: Callable[[RawEvent, ApiRequest, Outcome, int], None],
    ):
        self.store = store
        self.client = client
        self.on_delivered = on_delivered

    def run(self, items: Sequence[Item]) -> list[Result]:
        results = {id(item): Result(item) for item in items}
        guards: dict[int, Guard] = {}
        for item in items:
            try:
                guards.update({id(r): Guard.from_dict(r.guard) for r in item.pending if r.guard})
            except Exception as exc:
                results[id(item)].broken(exc)
        live = [item for item in items if results[id(item)].error is None]
        locks = {guards[id(r)].lock for i in live for r in i.pending if r.guard}
        taken = self.store.acquire_many(locks) if locks else {}
        try:
            self._run(live, guards, taken, results)
        finally:
            if taken:
                self.store.release_many(taken)
        return list(results.values())

    def _run(
        self,
        items: Sequence[Item],
        guards: dict[int, Guard],
        taken: dict[str, str],
        results: dict[int, Result],
    ) -> None:
        entities = {guards[id(r)].entity for i in items for r in i.pending if r.guard} | {
            related
            for i in items
            for r in i.pending
            if r.guard and (related := guards[id(r)].related)
        }
        state = self.store.load_many(entities) if entities else {}
        loaded = {entity: dict(fields) for entity, fields in state.items()}
        sends: list[_Send] = []
        marks: dict[str, dict[str, str]] = {}

        for item in items:
            result = results[id(item)]
            busy = any(guards[id(r)].lock not in taken for r in item.pending if r.guard)
            if busy:
                result.remaining = list(item.pending)
                result.retry_after = BUSY_RETRY_SECONDS
                continue
            # Decided on copies: an exception half-way leaves nothing of this item behind.
            names = {n for r in item.pending if r.guard for n in _names(guards[id(r)])}
            decisions = _Decisions({n: dict(state.get(n, {})) for n in names})
            try:
                for request in item.pending:
                    decisions.add(item, request, guards.get(id(request)))
            except Exception as exc:
                result.broken(exc)
                continue
            state.update(decisions.state)
            for entity, fields in decisions.marks.items():
                marks.setdefault(entity, {}).update(fields)
            sends.extend(decisions.sends)
            for request, reason in decisions.skips:
                metrics.DELIVERIES.labels(metrics.endpoint(request.path), "skipped").inc()
                log.info(
                    "skipped",
                    extra={"event_id": item.event.id, "entity": request.entity, "reason": reason},
                )
        if marks:
            self.store.update_many(marks)  # before sending: a lost answer may still count
        self._send(sends, results, loaded)

    def _send(
        self, sends: list[_Send], results: dict[int, Result], loaded: dict[str, dict[str, str]]
    ) -> None:
        delivered_fields: dict[str, dict[str, str]] = {}
        truth = loaded  # the state as really delivered so far, per entity
        stopped: Outcome | None = None  # a transient failure: the API is not taking requests
        doubtful: set[str] = set()  # entities whose assumed state proved false
        halted: set[int] = set()  # items stopped at a request
        for send in sends:
            result = results[id(send.item)]
            if id(send.item) in halted:
                continue
            entity = send.guard.entity if send.guard else None
            if stopped is not None or (entity and entity in doubtful):
                self._halt(result, send, stopped, halted)
                continue
            try:
                outcome = self.client.send(send.request, send.item.event.id)
            except Exception as exc:  # this event's request cannot be sent: its own failure
                result.broken(exc)
                halted.add(id(send.item))
                if entity:
                    doubtful.add(entity)
                continue
            if outcome.ok:
                if send.guard is not None:
                    entity_truth = truth.setdefault(send.guard.entity, {})
                    fields = delivered(send.guard, entity_truth)
                    entity_truth.update(fields)
                    delivered_fields.setdefault(send.guard.entity, {}).update(fields)
                try:
                    self.on_delivered(send.item.event, send.request, outcome, send.item.attempt)
                except Exception:  # only counts and logs: the delivery itself stands
                    log.warning(
                        "could not record a delivery", extra={"event_id": send.item.event.id}
                    )
                continue
            halted.add(id(send.item))
            result.remaining = list(send.item.pending)  # all of it: see _halt
            result.outcome = outcome
            if entity:
                doubtful.add(entity)
            if outcome.transient:
                stopped = outcome
        if delivered_fields:
            self.store.update_many(delivered_fields)
        for result in results.values():
            if not result.remaining and result.outcome is None and result.error is None:
                result.delivered = True

    @staticmethod
    def _halt(result: Result, send: _Send, stopped: Outcome | None, halted: set[int]) -> None:
        """Not sent this round: after the API stopped answering, or because an earlier
        request of the same entity failed and this one was decided assuming it had not.

        The whole item is retried, not only from this request on: its earlier requests may
        have been skipped on the same false assumption (another event's `placed`, which then
        failed), and the attempt marks of this round may since have made that other event
        look stale. On the retry the rules skip again, on the real state, what went through.
        """
        halted.add(id(send.item))
        result.remaining = list(send.item.pending)
        if stopped is not None:
            result.outcome = stopped
        else:
            result.retry_after = RECHECK_SECONDS
