"""Group commit: webhooks in flight in one web process share one Redis round trip.

Ingest may answer 2xx only once the event is stored, so every webhook waits for a write.
Under the gevent web worker many webhooks are in flight at once; instead of each paying
its own round trip (and redis-py's per-command work around it), the first to find the
connection free takes every write queued so far and sends them as one pipeline, as
databases batch their log flushes. A lone webhook still makes exactly one call, with no
delay added.

With `senders` above 1, that many batches may be on the wire at once (each on its own
connection): a caller that finds a turn free sends what is queued without waiting for the
batch before to come back. That matters where each batch waits for a disk flush that the
other end shares among all its clients (Redis under `appendfsync always`).

A caller may give a deadline: if its item has not gone out by then (the batch before it is
stuck on the wire, Redis hangs), it gives up with the `expired` error instead of queueing
behind a stuck batch; an item already on the wire waits for that batch's answer, which the
connection's own timeout bounds. A sender never sends an item whose deadline has passed.

The locks are made per process on first use, after gunicorn's gevent worker has
monkey-patched `threading`: a lock made before the fork would block the whole worker.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)  # a slot is itself, whatever it holds (found in the queue by identity)
class _Slot:
    item: Any
    deadline: float | None = None  # time.monotonic() after which it must not be sent
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    finished: Any = field(default_factory=lambda: threading.Event())


@dataclass
class _ProcessState:
    pid: int
    send_lock: Any  # a turn to send: a lock, or a semaphore for several senders
    queue_lock: Any = field(default_factory=lambda: threading.Lock())
    queued: list[_Slot] = field(default_factory=list)


class GroupCommit(Generic[Item, Result]):
    """`submit(item)` returns what `run_batch` answered for that item.

    `run_batch` gets the items queued while the previous batch was on the wire and returns
    one result per item: a value, or an exception to raise in that item's caller. If it
    raises, every caller of the batch gets that exception.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        interrupted: Callable[[], BaseException],
        expired: Callable[[], BaseException] | None = None,
        senders: int = 1,
    ):
        self._run_batch = run_batch
        self._interrupted = interrupted  # for callers whose batch's sender was stopped
        self._expired = expired or interrupted  # for callers whose deadline passed first
        self._senders = senders  # batches on the wire at once
        self._state: _ProcessState | None = None

    def _process_state(self) -> _ProcessState:
        state = self._state
        if state is None or state.pid != os.getpid():
            turns = threading.Lock() if self._senders == 1 else threading.Semaphore(self._senders)
            state = self._state = _ProcessState(os.getpid(), turns)
        return state

    def submit(self, item: Item, deadline: float | None = None) -> Result:
        """`run_batch`'s answer for `item`; `deadline` (time.monotonic()) bounds the wait
        for the batch before to leave the wire."""
        state = self._process_state()
        slot = _Slot(item, deadline)
        with state.queue_lock:
            state.queued.append(slot)
        if self._take_turn(state, slot):
            try:
                if not slot.done:  # else the sender before took it along
                    with state.queue_lock:
                        batch, state.queued = state.queued, []
                    if batch:  # empty when another sender has it on the wire
                        self._send(batch)
            finally:
                state.send_lock.release()
            # With several senders, the one that took this item along may still be waiting
            # for its answer (with one, it finished before this turn came).
            slot.finished.wait()
        else:
            with state.queue_lock:
                queued = slot in state.queued
                if queued:
                    state.queued.remove(slot)
            if queued:
                raise self._expired()
            slot.finished.wait()  # on the wire: the connection's timeout bounds its answer
        if slot.error is not None:
            raise slot.error
        return slot.result

    @staticmethod
    def _take_turn(state: _ProcessState, slot: _Slot) -> bool:
        if slot.deadline is None:
            return bool(state.send_lock.acquire())
        return bool(state.send_lock.acquire(timeout=max(slot.deadline - time.monotonic(), 0)))

    def _send(self, batch: list[_Slot]) -> None:
        now = time.monotonic()
        for slot in batch:
            if slot.deadline is not None and now > slot.deadline:
                slot.error, slot.done = self._expired(), True
        live = [slot for slot in batch if not slot.done]
        try:
            try:
                results: Sequence[Any] = (
                    self._run_batch([slot.item for slot in live]) if live else []
                )
            except Exception as exc:
                results = [exc] * len(live)
            for slot, result in zip(live, results, strict=True):
                if isinstance(result, BaseException):
                    slot.error = result
                else:
                    slot.result = result
                slot.done = True
        finally:
            # The sender itself was stopped (a timeout, a killed greenlet): no caller may
            # wait for, or return, an answer that never came.
            for slot in batch:
                if not slot.done:
                    slot.error, slot.done = self._interrupted(), True
                slot.finished.set()
