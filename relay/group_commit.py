"""Group commit: webhooks in flight in one web process share one Redis round trip.

Ingest may answer 2xx only once the event is stored, so every webhook waits for a write
(and the delivery worker's senders record every answer the same way). Under the gevent web
worker many webhooks are in flight at once; instead of each paying its own round trip (and
redis-py's per-command work around it), the first to find the connection free sends its
write as it is, and the writes queued while it is on the wire go out together as the next
batch, as databases batch their log flushes. A lone webhook still makes exactly one call,
with no delay added.

The turn passes directly: a sender whose batch came back hands the next batch (everything
queued) to the first caller waiting, and wakes the callers it answered. A waiting caller
wakes only for its answer or for its turn; it never takes a lock in turn just to find its
write already answered (among OS threads that was a convoy: `python -m bench group_commit`).

With `senders` above 1, that many batches may be on the wire at once (each on its own
connection): a caller that finds a turn free sends what is queued without waiting for the
batch before to come back. That matters where each batch waits for a disk flush that the
other end shares among all its clients (Redis under `appendfsync always`).

A caller may give a deadline: if its item has not gone out by then (the batch before it is
stuck on the wire, Redis hangs), it gives up with the `expired` error instead of queueing
behind a stuck batch; an item already on the wire waits for that batch's answer, which the
connection's own timeout bounds. A sender never sends an item whose deadline has passed.

The lock is made per process on first use, after gunicorn's gevent worker has
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


def _new_event() -> Any:
    return threading.Event()  # looked up when called: gevent may have patched it since


@dataclass(eq=False)  # a slot is itself, whatever it holds (found in the queue by identity)
class _Slot:
    item: Any
    deadline: float | None = None  # time.monotonic() after which it must not be sent
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    batch: list[_Slot] | None = None  # the turn, handed to this caller with what to send
    woken: Any = field(default_factory=lambda: _new_event())  # answered, or handed a turn


@dataclass
class _ProcessState:
    pid: int
    lock: Any = field(default_factory=lambda: threading.Lock())
    queued: list[_Slot] = field(default_factory=list)
    sending: int = 0  # batches on the wire (turns taken)


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
            state = self._state = _ProcessState(os.getpid())
        return state

    def submit(self, item: Item, deadline: float | None = None) -> Result:
        """`run_batch`'s answer for `item`; `deadline` (time.monotonic()) bounds the wait
        for the batch before to leave the wire."""
        state = self._process_state()
        slot = _Slot(item, deadline)
        with state.lock:
            if state.sending < self._senders:  # a turn is free: send at once
                state.sending += 1
                batch: list[_Slot] | None = [*state.queued, slot]
                state.queued = []
            else:
                state.queued.append(slot)
                batch = None
        if batch is None:
            batch = self._wait(state, slot)
        if batch is not None:  # this caller's turn (its own item is in the batch)
            self._send_turn(state, batch)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _wait(self, state: _ProcessState, slot: _Slot) -> list[_Slot] | None:
        """Wait for the item's answer (None), or for the turn handed to it (what to send)."""
        timeout = None if slot.deadline is None else max(slot.deadline - time.monotonic(), 0)
        try:
            if not slot.woken.wait(timeout):
                with state.lock:
                    if slot in state.queued:  # still waiting for a turn: it gives up unsent
                        state.queued.remove(slot)
                        raise self._expired()
                # On the wire, or just handed a turn: the connection's timeout bounds it.
                slot.woken.wait()
        except BaseException:
            self._leave(state, slot)  # stopped while waiting (a killed greenlet, a timeout)
            raise
        if slot.batch is None:
            return None
        with state.lock:  # what queued up since the turn was handed goes along
            batch, state.queued = slot.batch + state.queued, []
        return batch

    def _leave(self, state: _ProcessState, slot: _Slot) -> None:
        """A caller stopped while it waits leaves unsent; a turn handed to it goes on to the
        next caller of its batch, so the others are never left waiting for a dead sender."""
        with state.lock:
            if slot in state.queued:
                state.queued.remove(slot)
            if slot.batch is None:
                return  # queued (now gone), or on the wire: its sender answers the others
            rest, slot.batch = [other for other in slot.batch if other is not slot], None
            following = self._hand_on(state, rest)
        if following is not None:
            following.woken.set()

    def _send_turn(self, state: _ProcessState, batch: list[_Slot]) -> None:
        """Send `batch`, then hand the turn, with everything queued meanwhile, straight to
        the first caller waiting (a caller whose item went out never waits for a turn)."""
        try:
            self._send(batch)
        finally:
            with state.lock:
                following = self._hand_on(state, [])
            if following is not None:
                following.woken.set()
            for slot in batch:
                slot.woken.set()

    @staticmethod
    def _hand_on(state: _ProcessState, unsent: list[_Slot]) -> _Slot | None:
        """Under the lock, as a turn ends: `unsent` and everything queued become the next
        batch of the first of them, whom the caller wakes; with none, the turn is free."""
        following, state.queued = unsent + state.queued, []
        if not following:
            state.sending -= 1
            return None
        following[0].batch = following
        return following[0]

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
