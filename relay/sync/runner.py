"""The runner: a run's phases, page by page, from the store into the inbox.

    for each phase not yet done:
        page = client.fetch(phase, cursor)                       one store request or a few
        wait while more than MAX_WAITING events wait in Redis    (progress means delivery)
        MULTI: the page's events into the inbox, its sightings, the new cursor  EXEC
    then, for a phase with sightings (guest buyers): their items, a chunk at a time, the
    same way

The events are RawEvents of the platform with the webhook's topic and body, and
`x-relay-origin` (sync or reconcile) and `x-relay-run` headers; the workers map and deliver
them like any webhook. They carry no dedup mark: the entity rules are what keeps an
unchanged record from being sent again.

A dry run fetches and maps, counts the records it would hand to the workers, and writes
nothing to Redis.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from redis import Redis

from relay.events import RawEvent, new_event_id
from relay.inbox import Entry, Inbox, push
from relay.mapping import IgnoreEvent, Platform
from relay.store_api import (
    ORIGIN_HEADER,
    ORIGIN_RECONCILE,
    ORIGIN_SYNC,
    RUN_HEADER,
    Item,
    Page,
    Phase,
    Sighting,
    StoreAuthError,
    StoreClient,
    StoreError,
    StoreUnavailable,
)
from relay.sync.checkpoints import Checkpoints, PhaseState, Run
from relay.sync.session import Stopped

log = logging.getLogger("relay.sync")
# Backpressure: a page waits while more events than this wait to be delivered, so that a big
# sync keeps Redis small and its progress is delivery, not a queue filling up.
MAX_WAITING = 2000
EMIT_CHUNK = 100
STALL_WARNING_SECONDS = 60.0

Progress = Callable[[Run, PhaseState, str], None]


class Runner:
    def __init__(
        self,
        redis: Redis | None,
        platform: Platform,
        client: StoreClient,
        checkpoints: Checkpoints | None,
        *,
        options: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
        lost: threading.Event | None = None,
        progress: Progress | None = None,
        max_waiting: int = MAX_WAITING,
    ):
        self.redis = redis
        self.platform = platform
        self.client = client
        self.checkpoints = checkpoints  # None: a dry run (nothing is written)
        self.options = options or {}
        self.stop = stop or threading.Event()
        self.lost = lost or threading.Event()
        self.progress = progress
        self.max_waiting = max_waiting
        self.inbox = Inbox(redis) if redis is not None else None
        # A dry run's: records by kind that the workers would get, and the rest.
        self.counts: Counter[str] = Counter()
        self._dry_states: dict[str, PhaseState] = {}
        self._dry_sightings: dict[str, dict[str, dict[str, Any]]] = {}

    @property
    def dry_run(self) -> bool:
        return self.checkpoints is None

    # --- a run ----------------------------------------------------------------------------

    def run(self, run: Run) -> Run:
        """Every phase not yet done; the run's status says how it ended (and is saved)."""
        skipped = 0
        try:
            for phase in run.phases:
                state = self._state(phase)
                if not state.done:
                    self._phase(run, phase, state)
                skipped += state.skipped
            run.status = "incomplete" if skipped else "done"
            run.error = f"{skipped} record(s) could not be read from the store" if skipped else ""
        except Stopped:
            run.status, run.error = "interrupted", "stopped"
        except StoreUnavailable as exc:
            run.status, run.error = "interrupted", str(exc)
        except StoreAuthError as exc:
            run.status, run.error, run.auth_failed = "failed", str(exc), True
        except StoreError as exc:
            run.status, run.error = "failed", str(exc)
        finished = run.status in ("done", "incomplete")
        run.finished_at = time.time() if finished else None
        if self.checkpoints is not None:
            self.checkpoints.set_status(run.status, run.error, finished=finished)
        level = logging.INFO if run.status == "done" else logging.WARNING
        log.log(
            level,
            f"{run.kind} {run.status}",
            extra={"platform": run.platform, "run": run.run_id, "error": run.error or None},
        )
        return run

    def _state(self, phase: Phase) -> PhaseState:
        if self.checkpoints is None:
            return self._dry_states.setdefault(phase.name, PhaseState(phase.name))
        return self.checkpoints.phase(phase.name)

    def _phase(self, run: Run, phase: Phase, state: PhaseState) -> None:
        began, began_scanned = time.monotonic(), state.scanned
        while not state.walked:
            self._check_stop()
            page = self.client.fetch(phase, state.cursor)
            elapsed = max(time.monotonic() - began, 1e-3)
            rate = (state.scanned + page.scanned - began_scanned) / elapsed
            self._store_page(run, phase, state, page, rate)
            for ref in page.skipped:
                log.warning(
                    "a record the store could not return was skipped",
                    extra={"platform": run.platform, "phase": phase.name, "entity": ref},
                )
            self._report(run, state, "")
        self._emit(run, phase, state)
        if self.checkpoints is None:
            state.done = True
        else:
            pipe = self.checkpoints.redis.pipeline(transaction=True)
            self.checkpoints.finish_phase(pipe, state)
            pipe.execute()
        log.info(
            "phase done",
            extra={
                "platform": run.platform,
                "phase": phase.name,
                "scanned": state.scanned,
                "pushed": state.pushed,
                "skipped": state.skipped or None,
            },
        )
        self._report(run, state, "")

    # --- one page -------------------------------------------------------------------------

    def _store_page(
        self, run: Run, phase: Phase, state: PhaseState, page: Page, rate: float
    ) -> None:
        if self.checkpoints is None:
            self._count(page.items)
            self._dry_sight(phase, page.sightings)
            state.scanned_before_last = state.scanned
            state.scanned += page.scanned
            state.pushed += len(page.items)
            state.cursor, state.walked = page.cursor, page.cursor is None
            state.remaining = page.remaining if page.remaining is not None else state.remaining
            state.skipped += len(page.skipped)
            state.skipped_ids = (state.skipped_ids + page.skipped)[:50]
            state.rate = rate
            return
        if page.items:
            self._wait_for_room(run, state)
        merged = self._merged_sightings(phase, page.sightings)
        pipe = self.checkpoints.redis.pipeline(transaction=True)
        for item in page.items:
            push(pipe, Entry(self._event(run, item).to_dict(), None))
        if merged:
            pipe.hset(self.checkpoints.sightings_key(phase.name), mapping=merged)
        self.checkpoints.save_page(pipe, state, page, len(page.items), rate)
        pipe.execute()

    def _event(self, run: Run, item: Item) -> RawEvent:
        origin = ORIGIN_RECONCILE if run.kind == "reconcile" else ORIGIN_SYNC
        return store_event(self.platform.name, item, origin, run.run_id)

    def _wait_for_room(self, run: Run, state: PhaseState) -> None:
        """Backpressure: the workers deliver what waits before more is fetched."""
        assert self.inbox is not None
        waiting = self.inbox.waiting()
        if waiting <= self.max_waiting:
            return
        since, lowest, warned = time.monotonic(), waiting, False
        while waiting > self.max_waiting:
            self._report(run, state, f"waiting for delivery ({waiting} events queued)")
            self._check_stop(wait=0.25)
            waiting = self.inbox.waiting()
            if waiting < lowest:
                since, lowest = time.monotonic(), waiting
            elif not warned and time.monotonic() - since > STALL_WARNING_SECONDS:
                warned = True
                log.warning(
                    "no event was delivered for a minute: is a worker running "
                    "(`relay run` or `relay worker`)? The sync waits for it",
                    extra={"platform": run.platform, "attempts": waiting},
                )

    def _check_stop(self, wait: float = 0.0) -> None:
        if self.lost.is_set():
            raise StoreError("the store lock was lost (another process took over the store)")
        if (self.stop.wait(wait) if wait else self.stop.is_set()) or self.lost.is_set():
            raise Stopped()

    def _report(self, run: Run, state: PhaseState, note: str) -> None:
        if self.progress is not None:
            self.progress(run, state, note)

    # --- sightings --------------------------------------------------------------------------

    def _merged_sightings(self, phase: Phase, sightings: list[Sighting]) -> dict[str, str]:
        """The page's sightings merged into what the phase holds (read before the page's
        transaction: only this process walks the store, under its lock)."""
        if not sightings:
            return {}
        assert self.checkpoints is not None
        keys = sorted({s.key for s in sightings})
        stored = self.checkpoints.redis.hmget(self.checkpoints.sightings_key(phase.name), keys)
        held = {k: json.loads(v) for k, v in zip(keys, stored, strict=True) if v is not None}
        for sighting in sightings:
            _merge(held, sighting)
        return {k: json.dumps(v, separators=(",", ":")) for k, v in held.items() if k in keys}

    def _dry_sight(self, phase: Phase, sightings: list[Sighting]) -> None:
        held = self._dry_sightings.setdefault(phase.name, {})
        for sighting in sightings:
            _merge(held, sighting)

    def _emit(self, run: Run, phase: Phase, state: PhaseState) -> None:
        """The records known only from sightings, once the walk has read everything."""
        if self.checkpoints is None:
            held = self._dry_sightings.pop(phase.name, {})
            items = [self._from_sighting(phase, k, v) for k, v in held.items()]
            self._count(items)
            state.pushed += len(items)
            return
        redis, key = self.checkpoints.redis, self.checkpoints.sightings_key(phase.name)
        cursor = state.emit_cursor
        while True:
            self._check_stop()
            next_cursor, found = redis.hscan(key, cursor, count=EMIT_CHUNK)
            entries = {k.decode(): json.loads(v) for k, v in found.items()}
            items = [self._from_sighting(phase, k, v) for k, v in entries.items()]
            if items:
                self._wait_for_room(run, state)
            pipe = redis.pipeline(transaction=True)
            for item in items:
                push(pipe, Entry(self._event(run, item).to_dict(), None))
            if entries:
                pipe.hdel(key, *entries)
            self.checkpoints.save_emitted(pipe, state, int(next_cursor), len(items))
            pipe.execute()
            self._report(run, state, "")
            if int(next_cursor) == 0:
                return
            cursor = int(next_cursor)

    def _from_sighting(self, phase: Phase, key: str, held: dict[str, Any]) -> Item:
        return self.client.from_sightings(phase, key, held["data"], held["first"], held["last"])

    # --- a dry run's counts -------------------------------------------------------------------

    def _count(self, items: list[Item]) -> None:
        """What the mapper makes of each item (what the workers would be handed)."""
        for item in items:
            event = RawEvent(
                "dry-run",
                self.platform.name,
                item.topic,
                time.time(),
                item.body,
                "application/json",
                headers={ORIGIN_HEADER: ORIGIN_SYNC},
            )
            try:
                records = self.platform.map_event(event, self.options)
            except IgnoreEvent:
                self.counts["ignored"] += 1
                continue
            except Exception:
                self.counts["unmappable"] += 1
                continue
            self.counts.update(record.kind for record in records)


def store_event(platform: str, item: Item, origin: str, run_id: str) -> RawEvent:
    """A fetched record as the event a webhook would have stored, saying where it came from."""
    return RawEvent(
        id=new_event_id(),
        platform=platform,
        topic=item.topic,
        received_at=time.time(),
        body=item.body,
        content_type="application/json",
        headers={ORIGIN_HEADER: origin, RUN_HEADER: run_id},
    )


def _merge(held: dict[str, dict[str, Any]], sighting: Sighting) -> None:
    """Per key: the newest sighting's data, the earliest and the latest time."""
    current = held.get(sighting.key)
    if current is None:
        held[sighting.key] = {"data": sighting.data, "first": sighting.at, "last": sighting.at}
        return
    if sighting.at >= current["last"]:
        current["data"], current["last"] = sighting.data, sighting.at
    if sighting.at < current["first"]:
        current["first"] = sighting.at
