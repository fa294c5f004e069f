"""Runs and their phases in Redis: where each walk is, what it pushed, what it could not read.

    relay:sync:<platform>:<kind>                 the run (kind: backfill | reconcile): id,
                                                 status, phases, window, times, error
    relay:sync:<platform>:<kind>:phase:<name>    one phase: cursor (the client's, JSON),
                                                 walked/done, scanned, pushed, remaining,
                                                 skipped and the first skipped ids, rate,
                                                 times
    relay:sync:<platform>:<kind>:sightings:<name>  per key: the newest sighting and the
                                                 first and last times (guest buyers)

A page's events, its sightings and its new cursor are written in one transaction (the
runner's), so the cursor always says exactly what was pushed: a run killed at any moment
goes on from the page after the last one stored, and pushes nothing twice.

Statuses: `running` (or killed while running), `interrupted` (stopped: Ctrl-C, a worker's
stop, the store unavailable), `failed` (the store refused the credentials, or answered what
the run cannot go on with) — all three are resumed by the next run of the same kind —
and `done`, `incomplete` (finished, with records the store could not return: their ids
are kept and logged), which a next run starts afresh.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from relay.store_api import Page, Phase

RESUMABLE = frozenset({"running", "interrupted", "failed"})
FINISHED = frozenset({"done", "incomplete"})
SKIPPED_IDS_KEPT = 50


def run_key(platform: str, kind: str) -> str:
    return f"relay:sync:{platform}:{kind}"


def phase_key(platform: str, kind: str, phase: str) -> str:
    return f"{run_key(platform, kind)}:phase:{phase}"


def sightings_key(platform: str, kind: str, phase: str) -> str:
    return f"{run_key(platform, kind)}:sightings:{phase}"


@dataclass
class Run:
    platform: str
    kind: str  # backfill | reconcile
    run_id: str
    phases: list[Phase]
    params: dict[str, Any] = field(default_factory=dict)  # orders_since, since, until...
    status: str = "running"
    started_at: float = 0.0
    finished_at: float | None = None
    error: str = ""
    dry_run: bool = False
    auth_failed: bool = False  # this process's: the store refused the credentials

    def to_hash(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "phases": json.dumps([p.__dict__ for p in self.phases]),
            "params": json.dumps(self.params),
            "status": self.status,
            "started_at": repr(self.started_at),
            "finished_at": "" if self.finished_at is None else repr(self.finished_at),
            "error": self.error,
        }

    @classmethod
    def from_hash(cls, platform: str, kind: str, raw: dict[bytes, bytes]) -> Run:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            platform=platform,
            kind=kind,
            run_id=data["run_id"],
            phases=[Phase(**p) for p in json.loads(data.get("phases") or "[]")],
            params=json.loads(data.get("params") or "{}"),
            status=data.get("status", "running"),
            started_at=float(data.get("started_at") or 0),
            finished_at=float(data["finished_at"]) if data.get("finished_at") else None,
            error=data.get("error", ""),
        )


@dataclass
class PhaseState:
    name: str
    cursor: dict[str, Any] | None = None
    walked: bool = False  # every page read (sightings may still be emitted)
    done: bool = False
    scanned: int = 0
    scanned_before_last: int = 0  # `scanned` before the last page (its `remaining` counts it)
    pushed: int = 0
    remaining: int | None = None  # rows the store said were left, at the last page
    skipped: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    emit_cursor: int = 0  # where the emission of sightings is (an HSCAN cursor)
    rate: float = 0.0  # rows a second, over the last process's run of it
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None

    @property
    def total(self) -> int | None:
        """Rows in the whole walk as far as the store says: read so far, plus what it said
        is left (its count at the last page includes that page, which `scanned` has)."""
        if self.done:
            return self.scanned
        if self.remaining is None:
            return None
        return max(self.scanned, self.scanned_before_last + self.remaining)

    @classmethod
    def from_hash(cls, name: str, raw: dict[bytes, bytes]) -> PhaseState:
        data = {k.decode(): v.decode() for k, v in raw.items()}

        def number(key: str) -> float | None:
            return float(data[key]) if data.get(key) else None

        return cls(
            name=name,
            cursor=json.loads(data["cursor"]) if data.get("cursor") else None,
            walked=data.get("walked") == "1",
            done=data.get("done") == "1",
            scanned=int(data.get("scanned") or 0),
            pushed=int(data.get("pushed") or 0),
            remaining=int(data["remaining"]) if data.get("remaining") else None,
            skipped=int(data.get("skipped") or 0),
            skipped_ids=json.loads(data.get("skipped_ids") or "[]"),
            emit_cursor=int(data.get("emit_cursor") or 0),
            rate=float(data.get("rate") or 0),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            updated_at=number("updated_at"),
            scanned_before_last=int(data.get("scanned_before_last") or 0),
        )


class Checkpoints:
    def __init__(self, redis: Redis, platform: str, kind: str):
        self.redis = redis
        self.platform = platform
        self.kind = kind
        self.key = run_key(platform, kind)

    def phase_key(self, phase: str) -> str:
        return phase_key(self.platform, self.kind, phase)

    def sightings_key(self, phase: str) -> str:
        return sightings_key(self.platform, self.kind, phase)

    # --- runs -----------------------------------------------------------------------------

    def load(self) -> Run | None:
        raw = self.redis.hgetall(self.key)
        return Run.from_hash(self.platform, self.kind, raw) if raw else None

    def begin(self, run: Run) -> None:
        """A new run: the previous run's phases and sightings are dropped."""
        pipe = self.redis.pipeline(transaction=True)
        old = self.load()
        for phase in old.phases if old else []:
            pipe.delete(self.phase_key(phase.name), self.sightings_key(phase.name))
        for phase in run.phases:
            pipe.delete(self.phase_key(phase.name), self.sightings_key(phase.name))
        pipe.delete(self.key)
        pipe.hset(self.key, mapping=run.to_hash())
        pipe.execute()

    def set_status(self, status: str, error: str = "", finished: bool = False) -> None:
        fields = {"status": status, "error": error[:1000]}
        if finished:
            fields["finished_at"] = repr(time.time())
        self.redis.hset(self.key, mapping=fields)

    # --- phases ---------------------------------------------------------------------------

    def phase(self, name: str) -> PhaseState:
        return PhaseState.from_hash(name, self.redis.hgetall(self.phase_key(name)))

    def phases(self, run: Run) -> list[PhaseState]:
        pipe = self.redis.pipeline(transaction=False)
        for phase in run.phases:
            pipe.hgetall(self.phase_key(phase.name))
        return [
            PhaseState.from_hash(p.name, raw)
            for p, raw in zip(run.phases, pipe.execute(), strict=True)
        ]

    def save_page(
        self, pipe: Any, state: PhaseState, page: Page, pushed: int, rate: float
    ) -> PhaseState:
        """In the caller's transaction (with the page's events): where the phase is now."""
        now = time.time()
        state.scanned_before_last = state.scanned
        state.scanned += page.scanned
        state.pushed += pushed
        state.cursor = page.cursor
        state.walked = page.cursor is None
        if page.remaining is not None:
            state.remaining = page.remaining
        if page.skipped:
            state.skipped += len(page.skipped)
            state.skipped_ids = (state.skipped_ids + list(page.skipped))[:SKIPPED_IDS_KEPT]
        state.rate = rate
        if state.started_at is None:
            state.started_at = now
        state.updated_at = now
        fields = {
            "cursor": json.dumps(page.cursor) if page.cursor is not None else "",
            "walked": "1" if state.walked else "",
            "scanned": str(state.scanned),
            "scanned_before_last": str(state.scanned_before_last),
            "pushed": str(state.pushed),
            "remaining": "" if state.remaining is None else str(state.remaining),
            "skipped": str(state.skipped),
            "skipped_ids": json.dumps(state.skipped_ids),
            "rate": repr(rate),
            "started_at": repr(state.started_at),
            "updated_at": repr(now),
        }
        pipe.hset(self.phase_key(state.name), mapping=fields)
        return state

    def save_emitted(self, pipe: Any, state: PhaseState, cursor: int, pushed: int) -> None:
        state.emit_cursor = cursor
        state.pushed += pushed
        pipe.hset(
            self.phase_key(state.name),
            mapping={
                "emit_cursor": str(cursor),
                "pushed": str(state.pushed),
                "updated_at": repr(time.time()),
            },
        )

    def finish_phase(self, pipe: Any, state: PhaseState) -> None:
        now = time.time()
        state.done, state.walked, state.finished_at = True, True, now
        if state.started_at is None:
            state.started_at = now
        pipe.hset(
            self.phase_key(state.name),
            mapping={
                "done": "1",
                "walked": "1",
                "finished_at": repr(now),
                "started_at": repr(state.started_at),
            },
        )
        pipe.delete(self.sightings_key(state.name))
