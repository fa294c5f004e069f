"""Opening a store and running on it: what `relay sync`, `relay reconcile`, `relay connect`, the
admin's "Sync store" button and the workers' jobs (relay/jobs.py) share.

A run holds the store's lock (relay/sync/lock.py) from its first request to its last, so one
process talks to a store at a time whatever asks. Its checkpoints (relay/sync/checkpoints.py)
say where it is: a run that stopped (Ctrl-C, SIGKILL, a store outage, bad credentials) is
resumed by the next run of its kind; a finished one is followed by a fresh one.

Reconcile windows: (since, until], `until` the run's start, `since` the previous window's
end (a reconcile's, or a finished backfill's) minus OVERLAP_SECONDS, for the rows a store
saved with an earlier time than it committed them. Rows read twice in the overlap are what
the entity rules suppress. The customers resource has no change filter: new customers are
read newest first each run, and every customer compared once a day.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis

from relay.mapping import Platform
from relay.registry import Registry
from relay.settings import PlatformSettingsSpec, Settings, StoreConfig
from relay.store_api import StoreClient
from relay.sync.checkpoints import FINISHED, RESUMABLE, Checkpoints, Run
from relay.sync.lock import StoreBusy, StoreLock
from relay.sync.runner import Progress, Runner
from relay.sync.session import PacedSession

log = logging.getLogger("relay.sync")
OVERLAP_SECONDS = 120
FULL_SCAN_EVERY_SECONDS = 86400
FIRST_LOOKBACK_SECONDS = 3600  # a first reconcile with nothing before it


class NoStore(Exception):
    """The platform has no store API, or its settings are not set (one line)."""


def gmt_text(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def gmt_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=UTC).timestamp()


def full_scan_key(platform: str) -> str:
    return f"relay:sync:{platform}:full_scan_at"


def history_key(platform: str, kind: str) -> str:
    """The last runs of a kind, newest first (the admin page; one per interval's slot)."""
    return f"relay:sync:{platform}:{kind}:history"


HISTORY_KEPT = 50


def _remember(redis: Redis, run: Run) -> None:
    entry = {
        "run_id": run.run_id,
        "status": run.status,
        "slot": run.params.get("slot", 0),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
    }
    pipe = redis.pipeline(transaction=False)
    pipe.lpush(history_key(run.platform, run.kind), json.dumps(entry))
    pipe.ltrim(history_key(run.platform, run.kind), 0, HISTORY_KEPT - 1)
    pipe.execute()


def history(redis: Redis, platform: str, kind: str) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(history_key(platform, kind), 0, -1)]


@dataclass
class Store:
    """A platform's store, open: its client over a paced session."""

    settings: Settings
    redis: Redis
    platform: Platform
    config: StoreConfig
    session: PacedSession
    client: StoreClient
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.platform.name

    def credentials_hint(self) -> str:
        """Which settings hold the credentials, and what key the merchant must create."""
        assert self.platform.store is not None
        spec = PlatformSettingsSpec(
            self.name, self.platform.secret_kind, store_credentials=self.platform.store.credentials
        )
        names = " and ".join(spec.variable(c) for c in self.platform.store.credentials)
        help_text = f" ({self.platform.store.key_help})" if self.platform.store.key_help else ""
        return f"check {names}{help_text}"

    def lock(self) -> StoreLock:
        return StoreLock(self.redis, self.name)

    def close(self) -> None:
        self.session.close()


def open_store(
    settings: Settings,
    registry: Registry,
    redis: Redis,
    name: str,
    *,
    stop: threading.Event | None = None,
) -> Store:
    platform = registry.get(name)
    if platform is None:
        raise NoStore(f"no platform named {name!r} (see `relay mappers`)")
    if platform.store is None:
        raise NoStore(f"{platform.title} has no store API the relay can ask (push only)")
    config = settings.store_for(name)
    if config is None:
        spec = PlatformSettingsSpec(
            name, platform.secret_kind, store_credentials=platform.store.credentials
        )
        raise NoStore(f"set {', '.join(spec.store_variables)} to let the relay ask the store")
    stop = stop or threading.Event()
    session = PacedSession(config.max_rps, stop=stop)
    client = platform.store.client(config, session)
    return Store(settings, redis, platform, config, session, client, stop)


def new_run_id(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def _runner(
    store: Store, checkpoints: Checkpoints | None, lock: StoreLock | None, progress: Progress | None
) -> Runner:
    return Runner(
        store.redis if checkpoints is not None else None,
        store.platform,
        store.client,
        checkpoints,
        options=store.settings.options_for(store.name),
        stop=store.stop,
        lost=lock.lost if lock is not None else None,
        progress=progress,
    )


# --- backfill -------------------------------------------------------------------------------


def backfill(
    store: Store,
    *,
    orders_since: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    lock_wait: float = 0.0,
    on_start: Callable[[Run, bool], None] | None = None,
) -> Run:
    """An initial sync, or the one that stopped, resumed (same --orders-since). StoreBusy
    when another process holds the store."""
    with store.lock() as lock:
        lock.acquire(lock_wait)
        if dry_run:
            run = Run(
                store.name,
                "backfill",
                new_run_id("dry-run"),
                store.client.backfill(orders_since, gmt_text(time.time())),
                params={"orders_since": orders_since},
                started_at=time.time(),
                dry_run=True,
            )
            if on_start:
                on_start(run, False)
            runner = _runner(store, None, lock, progress)
            run = runner.run(run)
            run.params["counts"] = dict(runner.counts)
            return run
        checkpoints = Checkpoints(store.redis, store.name, "backfill")
        previous = checkpoints.load()
        resumed = (
            previous is not None
            and previous.status in RESUMABLE
            and previous.params.get("orders_since") == orders_since
        )
        if resumed:
            assert previous is not None
            run = previous
            checkpoints.set_status("running")
        else:
            until = gmt_text(time.time())
            run = Run(
                store.name,
                "backfill",
                new_run_id("backfill"),
                store.client.backfill(orders_since, until),
                params={"orders_since": orders_since, "until": until},
                started_at=time.time(),
            )
            checkpoints.begin(run)
        if on_start:
            on_start(run, resumed)
        run = _runner(store, checkpoints, lock, progress).run(run)
        if run.status in FINISHED:
            # It read every customer: the daily comparison can wait a day.
            store.redis.set(full_scan_key(store.name), repr(time.time()))
        _remember(store.redis, run)
        return run


# --- reconcile ------------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    run: Run
    health: dict | None  # the webhook check's findings (relay/sync/webhooks.py)
    resumed: bool = False


def reconcile_window(store: Store, now: float) -> tuple[str, str]:
    ends = []
    last = Checkpoints(store.redis, store.name, "reconcile").load()
    if last is not None and last.params.get("until"):
        ends.append(gmt_epoch(last.params["until"]))
    synced = Checkpoints(store.redis, store.name, "backfill").load()
    if synced is not None and synced.status in FINISHED and synced.params.get("until"):
        ends.append(gmt_epoch(synced.params["until"]))
    if ends:
        since = max(ends) - OVERLAP_SECONDS
    else:
        since = now - max(store.settings.reconcile_interval_seconds * 2, FIRST_LOOKBACK_SECONDS)
    return gmt_text(since), gmt_text(now)


def reconcile(
    store: Store,
    *,
    progress: Progress | None = None,
    lock_wait: float = 0.0,
    check_webhooks: bool = True,
    on_start: Callable[[Run, bool], None] | None = None,
    slot: int = 0,
) -> ReconcileResult:
    """What changed since the last run, and the store's webhooks checked (and repaired)."""
    from relay.sync import webhooks

    with store.lock() as lock:
        lock.acquire(lock_wait)
        health = None
        if check_webhooks:
            health = webhooks.check(store, repair=True)
        checkpoints = Checkpoints(store.redis, store.name, "reconcile")
        previous = checkpoints.load()
        resumed = previous is not None and previous.status in RESUMABLE
        if resumed:
            assert previous is not None
            run = previous
            checkpoints.set_status("running")
        else:
            now = time.time()
            since, until = reconcile_window(store, now)
            raw = store.redis.get(full_scan_key(store.name))
            full = raw is None or now - float(raw) > FULL_SCAN_EVERY_SECONDS
            run = Run(
                store.name,
                "reconcile",
                new_run_id("reconcile"),
                store.client.reconcile(since, until, full),
                # slot: the interval's, when the workers' schedule started it
                params={"since": since, "until": until, "full_scan": full, "slot": slot},
                started_at=now,
            )
            checkpoints.begin(run)
        if on_start:
            on_start(run, resumed)
        run = _runner(store, checkpoints, lock, progress).run(run)
        if run.status in FINISHED and run.params.get("full_scan"):
            store.redis.set(full_scan_key(store.name), repr(run.started_at))
        _remember(store.redis, run)
        return ReconcileResult(run, health, resumed)


# --- in a worker ----------------------------------------------------------------------------

_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


def in_background(name: str, target: Callable[[], None]) -> bool:
    """Run `target` in a thread of this process (a worker's), one per name at a time: a
    store run takes minutes to hours, and the worker's RQ loop (retries, product flushes)
    must not wait for it. False when one of that name is still running here."""
    with _threads_lock:
        running = _threads.get(name)
        if running is not None and running.is_alive():
            return False

        def guarded() -> None:
            try:
                target()
            except StoreBusy as exc:
                log.info("the store is busy; this run is skipped", extra={"holder": str(exc)})
            except Exception:
                log.exception("a store run failed", extra={"run": name})

        thread = threading.Thread(target=guarded, name=f"relay-{name}", daemon=True)
        _threads[name] = thread
        thread.start()
        return True


def background_threads() -> dict[str, threading.Thread]:
    with _threads_lock:
        return dict(_threads)
