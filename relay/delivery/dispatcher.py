"""The dispatcher: how a worker keeps many Commerce API requests in flight, one per entity.

    inbox ──take (oldest first)──▶ this worker's in-flight list ──prepare──▶ tasks
    tasks ──lanes: one per entity lock, in arrival order──▶ senders (threads, up to the gate's
            limit) ──results──▶ settle; an event whose tasks all ended leaves the list

One worker process can never beat `in flight / round trip`: with the Commerce API 100 ms
away, one request at a time is 10 events a second whatever the CPU does. The dispatcher
keeps up to RELAY_DELIVERY_CONCURRENCY requests in flight (one thread each, one keep-alive
connection pool), with the guarantees of one at a time:

- **one entity at a time**: the requests of one order, product, checkout or customer go in
  order, one in flight (a lane per lock here; the lock in Redis across workers);
- **answers recorded as they arrive** (relay/delivery/task.py): a crash resends at most what
  was in flight;
- **a rate limit pauses the API, not the event** (relay/delivery/api_gate.py): the refused
  request waits in its lane and goes again when the gate opens;
- **bounded memory**: it holds at most MAX_HELD events taken from the inbox (a backlog of
  100,000 waits in Redis, streamed), blocking on the inbox when it is empty;
- **a dead worker's work is taken over in seconds**: every few seconds it looks for in-flight
  lists whose owner's lease has expired (relay/delivery/leases.py) and gives them back to
  the inbox (relay/inbox.py); an event held by dead workers twice is handled alone.

Product writes go to the outbox at planning; their batches (100 products per request) are
flushed here too, one flush in flight at a time, counted as one request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis import Redis, RedisError

from relay.delivery.api_gate import ApiGate
from relay.delivery.endings import Endings
from relay.delivery.leases import alive, lease_key
from relay.delivery.processor import EventProcessor, Prepared
from relay.delivery.product_flush import ProductFlush
from relay.delivery.product_outbox import batch_key
from relay.delivery.recorder import Recorder
from relay.delivery.task import Task, TaskResult, TaskRunner
from relay.events import RawEvent, new_event_id
from relay.inbox import CHUNK, MAX_FAILED_DRAINS, Entry, Inbox, inflight_key, tries_key
from relay.runtime import metrics
from relay.runtime.processes import owner_dead

log = logging.getLogger("relay.worker")
IDLE_WAIT_SECONDS = 1.0  # how long one blocking wait on an empty inbox lasts
MAINTENANCE_EVERY = 2.0  # look for dead workers' lists, suspects
FLUSHING = "relay:flushing"  # batch id -> the worker flushing it inline (its lease decides)
TICK_SECONDS = 0.25  # the gate's shared pause, the product outbox
# A pause of the API longer than this: the waiting tasks go on the RQ schedule instead of
# waiting in memory (and in this worker's in-flight list).
HOLD_MAX_SECONDS = 30.0
# A request that timed out (or lost its connection) may still be applied by the API: the
# entity's next request waits this long, so that the two are not applied the wrong way round.
LIMBO_SECONDS = 2.0
BUSY_LOCK_FIRST_DELAY = 0.05  # another worker holds an entity: look again after this,
BUSY_LOCK_MAX_DELAY = 1.0  # doubling up to this


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        owner: str,
        inbox: Inbox,
        processor: EventProcessor,
        runner: TaskRunner,
        products: ProductFlush,
        gate: ApiGate,
        recorder: Recorder,
        endings: Endings,
        concurrency: int,
    ):
        self.redis = redis
        self.owner = owner
        self.inbox = inbox
        self.processor = processor
        self.runner = runner
        self.products = products
        self.gate = gate
        self.recorder = recorder
        self.endings = endings
        self.concurrency = concurrency
        self.max_held = max(64, 4 * concurrency)
        self.failed: BaseException | None = None  # what stopped a background run
        self._reset()

    def _reset(self) -> None:
        self._held: dict[str, Prepared] = {}
        self._outstanding: dict[str, int] = {}
        self._lanes: dict[str, deque[Task]] = {}
        self._ready_at: dict[str, float] = {}
        self._busy_delay: dict[str, float] = {}
        self._running_locks: set[str] = set()
        # ("task", task, result), ("flush", None, None), ("entry", None, entry) from the
        # feeder, ("error", task or None, exception): what the loop waits for.
        self._results: queue.Queue[tuple[str, Task | None, Any]] = queue.Queue()
        self._room = threading.Event()  # the feeder may take: there is room
        self._running = 0
        self._flushing = False
        self._flushing_batch: str | None = None  # the batch this worker flushes now
        self._alone = False  # a suspect is being handled, with nothing else in flight
        self._suspects = 0
        self._next_tick = 0.0
        self._next_maintenance = 0.0
        self._pool: ThreadPoolExecutor | None = None

    # --- running ----------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, burst: bool = False) -> int:
        """Deliver until `stop` is set (then finish what is in flight and give back the
        rest), or in `burst` mode until the inbox is empty and nothing is left in flight.
        Returns the number of events taken."""
        self._pool = ThreadPoolExecutor(self.concurrency + 1, thread_name_prefix="relay-send")
        stop = stop or threading.Event()
        ended = threading.Event()  # this run's end, for its feeder (`stop` is the caller's)
        feeder = None if burst else self._start_feeder(stop, ended)
        crashed = False
        try:
            return self._loop(stop, burst)
        except BaseException:
            # Like a crash: what this worker holds stays in its list, for the takeover
            # once its lease is gone, where each event counts a try (a poison pill among
            # them is found that way).
            crashed = True
            raise
        finally:
            ended.set()
            self._pool.shutdown(wait=True)
            if feeder is not None:
                feeder.join(timeout=IDLE_WAIT_SECONDS + 5)
            try:
                if not crashed:  # a clean stop: back to the inbox's front, no try counted
                    self.inbox.give_back(self.owner)
            finally:
                self._reset()

    def run_in_background(self, stop: threading.Event) -> threading.Thread:
        """The worker's own thread. Redis going away stops a run; the thread waits for Redis
        to come back, gives its own in-flight list back to the inbox (nothing of it is lost:
        Redis keeps it on disk) and runs again. Any other error stops the worker (SIGTERM to
        this process, which RQ answers with a warm shutdown), so that it is restarted."""

        def target() -> None:
            while not stop.is_set():
                try:
                    self.run(stop)
                    return
                except (RedisError, OSError) as exc:
                    log.warning(
                        "lost Redis (%s); delivering again when it is back", type(exc).__name__
                    )
                    self._wait_for_redis(stop)
                    with contextlib.suppress(RedisError, OSError):
                        self.inbox.give_back(self.owner)
                except BaseException as exc:
                    self.failed = exc
                    log.exception("the dispatcher stopped")
                    if not stop.is_set():
                        os.kill(os.getpid(), signal.SIGTERM)
                    return

        thread = threading.Thread(target=target, name="relay-dispatcher", daemon=True)
        thread.start()
        return thread

    def _wait_for_redis(self, stop: threading.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                self.redis.ping()
                return
            except (RedisError, OSError):
                stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _start_feeder(self, stop: threading.Event, ended: threading.Event) -> threading.Thread:
        """Blocks on the inbox while there is room, so that a webhook is picked up the
        moment it is stored, even while every sender waits on the API."""

        def feed() -> None:
            while not stop.is_set() and not ended.is_set():
                if not self._room.wait(TICK_SECONDS):
                    continue
                try:
                    entry = self.inbox.wait(self.owner, IDLE_WAIT_SECONDS)
                except BaseException as exc:
                    self._results.put(("error", None, exc))
                    return
                if entry is not None:
                    self._results.put(("entry", None, entry))

        thread = threading.Thread(target=feed, name="relay-feeder", daemon=True)
        thread.start()
        return thread

    def _loop(self, stop: threading.Event, burst: bool) -> int:
        taken = 0
        while True:
            now = time.monotonic()
            taken += self._collect(0.0)
            self._maintain(now)
            if not stop.is_set():
                taken += self._take()
            self._start_ready(now)
            if stop.is_set() and not self._running:
                return taken
            if burst and not self._held and not self._running:
                if self._finish_burst():
                    return taken
                continue
            if len(self._held) < self.max_held and not self._alone and not self._suspects:
                self._room.set()
            else:
                self._room.clear()
            taken += self._collect(self._wait_time(now))

    def _finish_burst(self) -> bool:
        """True when a burst run is done: nothing waits, and the outbox is flushed."""
        self._suspects = self.inbox.suspects()
        if self.inbox.depth() or self._suspects:
            return False
        if self.products.outbox.waiting():
            self._flush_batch()
            return False
        return True

    # --- taking from the inbox ----------------------------------------------------------------

    def _take(self) -> int:
        if self._alone:
            return 0
        if self._suspects:
            if self._held or self._running:
                return 0  # a suspect waits until nothing else is in flight
            entry = self.inbox.take_suspect(self.owner)
            self._suspects = 0
            if entry is None:
                return 0
            self._alone = True
            self._admit_suspect(entry)
            return 1
        room = self.max_held - len(self._held)
        if room < CHUNK // 2 and self._held:
            return 0  # take in chunks: one round trip each
        entries = self.inbox.take(self.owner, min(room, CHUNK))
        if entries:
            self._admit(entries)
        return len(entries)

    def _admit_suspect(self, entry: Entry) -> None:
        tries = self.inbox.tries(entry)
        if tries < MAX_FAILED_DRAINS:
            self._admit([entry])
            if not self._held:
                self._alone = False
            return
        event = RawEvent.from_dict(entry.event)
        self.endings.dead(
            event,
            "worker_crashed",
            f"workers died {tries} times while they held this event (killed, out of memory, "
            "or crashed on it), the last time with this event alone",
            attempts=tries,
        )
        self._finish_entries([entry])
        self._alone = False

    def _admit(self, entries: list[Entry]) -> None:
        done: list[Entry] = []
        for one in self.processor.prepare(entries):
            if one.deferred or not one.tasks:
                done.append(one.entry)
                continue
            self._held[one.event.id] = one
            self._outstanding[one.event.id] = len(one.tasks)
            for task in one.tasks:
                self._lanes.setdefault(task.lock, deque()).append(task)
        self._finish_entries(done)

    def _finish_entries(self, entries: list[Entry]) -> None:
        """Out of this worker's in-flight list (one round trip for all of them)."""
        self.recorder.write([c for entry in entries for c in self._finish_commands(entry)])

    def _finish_commands(self, entry: Entry) -> list[Callable[[Any], Any]]:
        stored, event_id = entry.stored(), entry.event_id
        return [
            lambda p: p.lrem(inflight_key(self.owner), 1, stored),
            lambda p: p.delete(tries_key(event_id)),
        ]

    # --- senders ------------------------------------------------------------------------------

    def _start_ready(self, now: float) -> None:
        paused = self.gate.paused_for()
        if paused > HOLD_MAX_SECONDS:
            self._postpone_all(paused)
        if paused > 0:
            return
        room = self.gate.limit - self._running
        for lock, lane in list(self._lanes.items()):
            if room <= 0:
                return
            if not lane or lock in self._running_locks or self._ready_at.get(lock, 0.0) > now:
                continue
            task = lane.popleft()
            self._running_locks.add(lock)
            if self._outstanding[task.event.id] == 1:  # its event's last task
                task.finish = self._finish_commands(self._held[task.event.id].entry)
            self._submit(task)
            room -= 1

    def _submit(self, task: Task) -> None:
        assert self._pool is not None
        self._running += 1
        self._pool.submit(self._send, task)

    def _send(self, task: Task) -> None:
        try:
            self._results.put(("task", task, self.runner.run(task)))
        except BaseException as exc:  # Redis failing: the dispatcher stops (see run)
            self._results.put(("error", task, exc))

    def _flush(self) -> None:
        try:
            self._flush_batch()
            self._results.put(("flush", None, None))
        except BaseException as exc:
            self._results.put(("error", None, exc))

    def _flush_batch(self) -> None:
        """Flush the product outbox here, under a batch id this worker is known to hold:
        killed mid-flush, it leaves a batch no RQ job would re-run, which another worker's
        maintenance hands to a flush job once this one's lease is gone."""
        batch_id = self._flushing_batch = new_event_id()
        self.redis.hset(FLUSHING, batch_id, self.owner)
        try:
            self.products.flush_products(batch_id)  # done, or a retry job now holds it
            # Not after an exception: the batch may still hold writes; recovery finishes it.
            self.redis.hdel(FLUSHING, batch_id)
        finally:
            self._flushing_batch = None

    def recover_flushes(self) -> int:
        """Batches that dead workers were flushing: each to a flush job (it finishes them)."""
        recovered = 0
        for raw_id, raw_owner in self.redis.hgetall(FLUSHING).items():
            batch_id, owner = raw_id.decode(), raw_owner.decode()
            if owner == self.owner:
                if batch_id == self._flushing_batch:
                    continue  # being flushed now (an exception left any other of ours)
            elif not owner_dead(owner) and alive(self.redis, owner):
                continue
            # Whoever removes the entry hands the batch on: once, whatever the workers.
            if self.redis.hdel(FLUSHING, batch_id) and self.redis.exists(batch_key(batch_id)):
                self.products.events.enqueue_flush(batch_id, at_front=True)
                log.warning(
                    "handed a product batch of a worker that died to a flush job",
                    extra={"code": "worker_lost", "batch": batch_id},
                )
                recovered += 1
        return recovered

    def _postpone_all(self, delay: float) -> None:
        finished: list[Entry] = []
        for lock, lane in list(self._lanes.items()):
            while lane:
                task = lane.popleft()
                one = self._held[task.event.id]
                self.processor.postpone(one, task, delay)
                self._task_ended(one, finished)
            if lock not in self._running_locks:
                del self._lanes[lock]
        self._finish_entries(finished)

    def _task_ended(self, one: Prepared, finished: list[Entry], gone: bool = False) -> None:
        """`gone`: the task's last write took the event out of the in-flight list already."""
        event_id = one.event.id
        self._outstanding[event_id] -= 1
        if self._outstanding[event_id] == 0:
            del self._outstanding[event_id]
            del self._held[event_id]
            self.processor.finish(one)
            if not gone:
                finished.append(one.entry)
            if self._alone and not self._held:
                self._alone = False

    # --- results ------------------------------------------------------------------------------

    def _wait_time(self, now: float) -> float:
        waits = [self._next_tick - now]
        waits += [at - now for lock, at in self._ready_at.items() if self._lanes.get(lock)]
        paused = self.gate.paused_for()
        if paused:
            waits.append(paused)
        return max(min(waits), 0.001)

    def _collect(self, timeout: float) -> int:
        """Handle what arrived (waiting up to `timeout` for the first); returns the number of
        events the feeder took."""
        finished: list[Entry] = []
        entries: list[Entry] = []
        try:
            item = self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
        except queue.Empty:
            return 0
        while True:
            kind, task, payload = item
            if kind == "error":
                raise payload
            if kind == "entry":
                entries.append(payload)
            elif kind == "flush":
                self._running -= 1
                self._flushing = False
            else:
                assert task is not None
                self._running -= 1
                self._ended(task, payload, finished)
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
        self._finish_entries(finished)
        if entries:
            self._admit(entries)
        return len(entries)

    def _ended(self, task: Task, result: TaskResult, finished: list[Entry]) -> None:
        lock = task.lock
        self._running_locks.discard(lock)
        lane = self._lanes.setdefault(lock, deque())
        if result.busy:  # another worker has this entity: keep the place in line
            lane.appendleft(task)
            delay = self._busy_delay.get(lock, BUSY_LOCK_FIRST_DELAY / 2) * 2
            self._busy_delay[lock] = min(delay, BUSY_LOCK_MAX_DELAY)
            self._ready_at[lock] = time.monotonic() + self._busy_delay[lock]
            return
        self._busy_delay.pop(lock, None)
        self._ready_at.pop(lock, None)
        if result.rate_limited:
            assert result.outcome is not None
            self.gate.refused(result.outcome.retry_after)
            metrics.DELIVERIES.labels(metrics.endpoint(result.remaining[0].path), "paused").inc()
            lane.appendleft(
                Task(task.event, result.remaining, lock, task.attempt, task.first_attempt_at)
            )
            return
        if result.outcome is not None and result.outcome.status is None:
            self._ready_at[lock] = time.monotonic() + LIMBO_SECONDS
        elif not lane:
            del self._lanes[lock]
        one = self._held[task.event.id]
        try:
            self.processor.settle(one, result)
        except RedisError:
            raise
        except Exception as exc:  # settling one event must not stop the others
            log.exception("could not settle a task", extra={"event_id": task.event.id})
            one.dead.append(self._broken(task, exc))
        self._task_ended(one, finished, gone=result.finished)

    @staticmethod
    def _broken(task: Task, exc: Exception) -> Any:
        from relay.delivery.failures import describe
        from relay.delivery.processor import Dead

        pending = [r.to_dict() for r in task.requests]
        return Dead("processing_error", describe(exc), pending, None, task.attempt, None)

    # --- housekeeping -------------------------------------------------------------------------

    def _maintain(self, now: float) -> None:
        if now >= self._next_tick:
            self._next_tick = now + TICK_SECONDS
            self.gate.refresh()
            if not self._flushing and self.products.outbox.flush_due(
                queued_jobs=len(self._held) + (1 if self.inbox.depth() else 0)
            ):
                assert self._pool is not None
                self._flushing = True
                self._running += 1
                self._pool.submit(self._flush)
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_EVERY
            self.take_over_dead()
            self.recover_flushes()
            self._suspects = self.inbox.suspects()

    def take_over_dead(self) -> int:
        """Give back the in-flight lists of workers whose lease expired (on any host)."""
        moved = 0
        for owner in self.inbox.owners():
            if owner == self.owner:
                continue
            if owner_dead(owner):
                # On this host, and its process is gone (`relay run` restarting a killed
                # worker): no need to wait for its lease; ending it frees its locks too.
                self.redis.delete(lease_key(owner))
            elif alive(self.redis, owner):
                continue
            count = self.inbox.take_over(owner)
            if count:
                log.warning(
                    "took over the events of a worker that died",
                    extra={"code": "worker_lost", "attempts": count},
                )
            moved += count
        return moved
