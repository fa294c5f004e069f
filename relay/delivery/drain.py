"""The drain job: the inbox handled chunk by chunk until it is empty.

A drain takes up to 50 events at a time into its in-flight list (relay/inbox.py), hands
them to the processor, then clears the list. After DRAIN_BUDGET_SECONDS it queues its own
continuation, so retries waiting in RQ get their turn. A drain that fails leaves its events
in the list for RQ's retry of the job, which handles them one at a time: the event being
handled when it fails again is the suspect, and after MAX_FAILED_DRAINS it is a
`worker_crashed` dead letter instead of a crash loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from redis import RedisError

from relay.delivery.endings import Endings
from relay.delivery.processor import EventProcessor
from relay.delivery.product_flush import ProductFlush
from relay.event_queue import EventQueue
from relay.events import RawEvent
from relay.inbox import MAX_FAILED_DRAINS, Entry, Inbox

DRAIN_BUDGET_SECONDS = 5.0  # then let RQ run what else waits (retries), and continue


class InboxDrain:
    def __init__(
        self,
        processor: EventProcessor,
        products: ProductFlush,
        inbox: Inbox,
        events: EventQueue,
        endings: Endings,
    ):
        self.processor = processor
        self.products = products
        self.inbox = inbox
        self.events = events
        self.endings = endings

    def run(self, drain_id: str) -> str:
        """Handle inbox events chunk by chunk until it is empty (or the budget is spent:
        then a continuation job is queued, so retries waiting in RQ get their turn)."""
        try:
            return self._drain(drain_id)
        except BaseException:
            self._after_failed_drain()
            raise

    def _drain(self, drain_id: str) -> str:
        handled, started = 0, time.monotonic()
        leftovers = self.inbox.inflight(drain_id)  # a failed or killed run of this job left these
        if leftovers:
            handled += self._retry_leftovers(drain_id, leftovers)
            self.inbox.done(drain_id)
            self.products.schedule_flush(inline=True)
        while True:
            entries = self.inbox.take(drain_id)
            if not entries:
                if self.inbox.sleep():
                    break
                continue
            self.processor.process_chunk(entries)
            self.inbox.done(drain_id)
            handled += len(entries)
            self.inbox.keep_awake()
            self.products.schedule_flush(inline=True)
            if time.monotonic() - started > DRAIN_BUDGET_SECONDS and self.inbox.depth():
                self.events.enqueue_drain()
                break
        return f"{handled} events"

    def _retry_leftovers(self, drain_id: str, entries: Sequence[Entry]) -> int:
        """The events a failed run of this drain held, one at a time, each out of the list
        once handled: if the drain fails again, the event being handled is the suspect."""
        for entry in entries:
            failed = self.inbox.note_try(entry)
            if failed >= MAX_FAILED_DRAINS:
                event = RawEvent.from_dict(entry.event)
                self.endings.dead(
                    event,
                    "worker_crashed",
                    f"the drain handling this event failed {failed} times (the worker died "
                    "or the job ran out of time), the last times with this event alone",
                    attempts=failed,
                )
            else:
                self.processor.process_chunk([entry])
            self.inbox.finish_one(drain_id, entry)
            self.inbox.keep_awake()
        return len(entries)

    def _after_failed_drain(self) -> None:
        """A drain that fails leaves its events in-flight for RQ's retry of the job; the
        events still in the inbox must not wait for that retry (or for the wake flag to
        expire): let the next webhook, or a fresh drain now, take them."""
        with contextlib.suppress(RedisError):  # Redis is gone: the flag expires by itself
            self.inbox.release_wake()
            if self.inbox.depth() and self.inbox.wake():
                self.events.enqueue_drain()
