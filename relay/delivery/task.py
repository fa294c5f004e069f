"""One task: an event's requests that share an entity lock, sent in order by one sender.

The dispatcher (relay/delivery/dispatcher.py) runs many tasks at once, but never two of one
lock: requests for the same order, product, checkout or customer go strictly one after the
other, across threads (the dispatcher's lanes) and across worker processes (the lock in
Redis). For each task a sender:

    1. takes the lock and reads the entities' state                 one round trip
    2. for each request in order: decides it with the entity rules (relay/delivery/
       entity_rules.py) on the state as it really is; writes its attempt mark, together
       with what the answers before it delivered                    one round trip
       then sends it
    3. writes what the last answer delivered and gives the lock back one round trip

The writes of answers that arrive together share a round trip (relay/delivery/recorder.py).
So at any moment each sender has at most one request whose answer is not yet recorded: a
worker killed (or a Redis restart) can only make the relay resend what was in flight.

A failure stops the task at the failed request; the rest of the task is what is left. An
exception while deciding or sending is this task's alone (`error`): the dispatcher
dead-letters its event, the other tasks go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.delivery.api_gate import ApiGate, is_rate_limit
from relay.delivery.commerce_api import ApiRequest, Client, Outcome
from relay.delivery.entity_rules import Guard, attempting, decide, delivered, skipped
from relay.delivery.entity_state import EntityStore, lock_key, state_key, ttl_for
from relay.delivery.failures import describe, not_ours
from relay.delivery.planning import effect_key
from relay.delivery.recorder import Recorder
from relay.events import RawEvent
from relay.runtime import metrics

log = logging.getLogger("relay.worker")


@dataclass
class Task:
    event: RawEvent
    requests: list[ApiRequest]
    lock: str  # the entity lock the requests share (a checkout shares its order's)
    attempt: int = 1
    first_attempt_at: float = 0.0
    # Commands that take the event out of the worker's in-flight list: set by the dispatcher
    # on the event's last task, written with that task's last answer when it delivered.
    finish: list[Callable[[Any], Any]] = field(default_factory=list)


@dataclass
class TaskResult:
    task: Task
    delivered: bool = False
    remaining: list[ApiRequest] = field(default_factory=list)
    outcome: Outcome | None = None  # the failed answer
    busy: bool = False  # another live worker holds the lock: try again shortly
    error: str | None = None  # an exception while deciding or sending
    finished: bool = False  # the event left the in-flight list with the last answer

    @property
    def rate_limited(self) -> bool:
        outcome = self.outcome
        return outcome is not None and is_rate_limit(outcome.status, outcome.retry_after)


def lock_of(request: ApiRequest) -> str:
    """The lock a request needs: its guard's, or (unguarded) one of its own."""
    if request.guard:
        return Guard.from_dict(request.guard).lock
    return f"request:{request.method}:{request.path}:{request.key}"


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


def _fields(raw: list[bytes]) -> dict[str, str]:
    """A hash as HGETALL answers it inside a script: a flat list of names and values."""
    return {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}


def _entities(guard: Guard) -> list[str]:
    return [guard.entity, guard.related] if guard.related else [guard.entity]


class _Writes:
    """State fields to write with the next round trip, per entity."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, str]] = {}

    def add(self, entity: str, fields: dict[str, str]) -> None:
        if fields:
            self.fields.setdefault(entity, {}).update(fields)

    def commands(self) -> list[Callable[[Any], Any]]:
        out: list[Callable[[Any], Any]] = []
        for entity, fields in self.fields.items():
            key, ttl = state_key(entity), ttl_for(entity)
            out.append(lambda p, key=key, fields=fields: p.hset(key, mapping=fields))
            out.append(lambda p, key=key, ttl=ttl: p.expire(key, ttl))
        self.fields = {}
        return out


class TaskRunner:
    def __init__(
        self,
        store: EntityStore,
        client: Client,
        recorder: Recorder,
        gate: ApiGate,
        on_delivered: Callable[[RawEvent, ApiRequest, Outcome, int], None],
    ):
        self.store = store
        self.client = client
        self.recorder = recorder
        self.gate = gate
        self.on_delivered = on_delivered

    def run(self, task: Task) -> TaskResult:
        result = TaskResult(task)
        token = self.store.new_token()
        try:
            guards = [Guard.from_dict(r.guard) if r.guard else None for r in task.requests]
            names = sorted({n for g in guards if g for n in _entities(g)})
            [answer] = self.recorder.write([self._take_and_mark(task, token, guards, names)])
        except Exception as exc:
            if not_ours(exc):
                raise
            result.remaining, result.error = list(task.requests), describe(exc)
            return result
        if not answer[0]:
            result.busy, result.remaining = True, list(task.requests)
            return result
        state = {name: _fields(raw) for name, raw in zip(names, answer[1:], strict=True)}
        writes = _Writes()
        try:
            self._send_all(task, guards, state, writes, result)
        except Exception as exc:
            if not_ours(exc):
                raise
            # From the request being handled on (each iteration sets `remaining`).
            result.remaining = result.remaining or list(task.requests)
            result.error = describe(exc)
        if result.error is None and result.outcome is None:
            result.delivered = True
        # What the last answer delivered and the lock back, in one round trip; and when this
        # delivered the event's last task, the event out of the in-flight list with them. If
        # Redis fails here the lock expires by itself, and the answer counts as in flight.
        finish = list(task.finish) if result.delivered else []
        release = self.recorder.script(self.store.release, [lock_key(task.lock)], [token])
        self.recorder.write([*writes.commands(), release, *finish])
        result.finished = bool(finish)
        return result

    def _take_and_mark(
        self, task: Task, token: str, guards: list[Guard | None], names: list[str]
    ) -> Callable[[Any], Any]:
        """The first round trip: the lock, every entity's attempt marks (the entity rules'
        `attempting`, safe to write before deciding), their state."""
        modified: dict[str, float] = {}
        placing: set[str] = set()
        for guard in guards:
            if guard is None:
                continue
            if guard.modified is not None:
                modified[guard.entity] = max(
                    guard.modified, modified.get(guard.entity, guard.modified)
                )
            if guard.rule == "order":
                placing.add(guard.entity)
        args: list[Any] = [token, self.store.lock_ttl_ms]
        for name in names:
            mark = modified.get(name)
            args += [
                ttl_for(name),
                "" if mark is None else repr(mark),
                "1" if name in placing else "0",
            ]
        keys = [lock_key(task.lock), *(state_key(n) for n in names)]
        return self.recorder.script(self.store.take_and_mark, keys, args)

    def _send_all(
        self,
        task: Task,
        guards: list[Guard | None],
        state: dict[str, dict[str, str]],
        writes: _Writes,
        result: TaskResult,
    ) -> None:
        sent = 0  # the first send's attempt marks went with the lock (_take_and_mark)
        for index, (request, guard) in enumerate(zip(task.requests, guards, strict=True)):
            result.remaining = list(task.requests[index:])
            sends: list[tuple[ApiRequest, Guard | None]] = [(request, guard)]
            if guard is not None:
                current = state.setdefault(guard.entity, {})
                related = state.get(guard.related, {}) if guard.related else {}
                decision = decide(guard, current, related)
                if not decision.send:
                    kept = skipped(guard, decision, current)
                    current.update(kept)
                    writes.add(guard.entity, kept)
                    metrics.DELIVERIES.labels(metrics.endpoint(request.path), "skipped").inc()
                    log.info(
                        "skipped",
                        extra={
                            "event_id": task.event.id,
                            "entity": request.entity,
                            "reason": decision.reason,
                        },
                    )
                    continue
                if decision.announce_first:
                    placed = _announcement(request)
                    sends.insert(0, (placed, Guard.from_dict(placed.guard or {})))
            for send, send_guard in sends:
                if send_guard is not None:
                    current = state.setdefault(send_guard.entity, {})
                    mark = attempting(send_guard, current)
                    current.update(mark)
                    if sent:
                        writes.add(send_guard.entity, mark)
                # Before it goes out: its attempt mark and what the answers before delivered
                # (nothing more to write for the first, unless requests before it were skipped).
                self.recorder.write(writes.commands())
                sent += 1
                outcome = self.client.send(send, task.event.id)
                if not outcome.ok:
                    result.outcome = outcome
                    return
                self.gate.succeeded()
                if send_guard is not None:
                    current = state.setdefault(send_guard.entity, {})
                    fields = delivered(send_guard, current)
                    current.update(fields)
                    writes.add(send_guard.entity, fields)
                try:
                    self.on_delivered(task.event, send, outcome, task.attempt)
                except Exception:  # only counts and logs: the delivery itself stands
                    log.warning("could not record a delivery", extra={"event_id": task.event.id})
        result.remaining = []
