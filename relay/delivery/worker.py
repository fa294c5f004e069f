"""`relay worker`: the dispatcher that delivers the inbox, and an RQ worker beside it for
the scheduled jobs (retries, product flushes), with RQ's retry scheduler.

    relay worker
      ├─ lease thread        renews relay:lease:<owner> (relay/delivery/leases.py)
      ├─ dispatcher threads  the inbox, many requests in flight (relay/delivery/dispatcher.py)
      ├─ store schedule      with a store API configured: claims the interval's reconcile
      │                      run and wanted products' completion, queued as RQ jobs
      └─ main thread         RQ SimpleWorker: retry jobs, product flushes, store jobs (which
                             run in threads of their own: relay/jobs.py); RQ's scheduler

SimpleWorker, not RQ's default forking Worker: forking per job added about 6 ms to every
webhook's end-to-end time here and throws away the keep-alive HTTP session to the Commerce
API. Scale with more worker processes, on any hosts: they share the inbox.

Things RQ leaves slow or fragile, handled here:
- A worker killed mid-job (SIGKILL, OOM) leaves its job "started". RQ notices only after
  the job's timeout plus a minute. Every maintenance pass hands the started jobs of workers
  whose lease expired (on any host) to RQ's retry path at once.
- A worker SIGKILLed left RQ's forked scheduler running on its own; it now gets SIGTERM
  when the worker dies (relay/runtime/child_processes.py).
- Redis going away makes RQ's loop raise. The worker then waits for Redis to come back and
  exits with EX_TEMPFAIL, and `relay run` starts a fresh one (not counted as a crash).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
import time
from typing import Any

from redis import Redis, RedisError
from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from relay import sync_signals
from relay.delivery import context as worker_context
from relay.delivery.account import refresh_if_stale
from relay.delivery.leases import Lease, alive
from relay.event_queue import (
    COMPLETE_PRODUCTS,
    QUEUE_NAME,
    RECONCILE_STORE,
    enqueue_store_job,
    make_queue,
)
from relay.inbox import Inbox
from relay.redis_conn import connect
from relay.registry import Registry
from relay.runtime.child_processes import end_forked_children_with_this_process
from relay.runtime.processes import HOST, local_process_dead, owner_tag, started_at
from relay.settings import Settings

log = logging.getLogger("relay.worker")
EX_TEMPFAIL = 75  # "try again": Redis was unreachable
# A worker killed mid-job on another host is noticed by a maintenance pass of any worker.
# RQ's default of 600 s would leave such an event waiting ten minutes.
MAINTENANCE_INTERVAL = 30
SCHEDULER_OWNER = "relay:scheduler-owner:{}"  # RQ scheduler name -> its worker's name
SCHEDULER_OWNER_DAYS = 30


def worker_name() -> str:
    """relay:<host>:<pid>:<start time>, so a dead worker can be told from its successor."""
    return f"relay:{owner_tag()}"


def _gone(redis: Redis, name: str) -> bool:
    """Is the worker of this name dead? Our worker names carry their lease's owner."""
    if not name.startswith("relay:"):
        return False
    return not alive(redis, name.removeprefix("relay:"))


def recover_intermediate_jobs(redis: Redis, settle_seconds: float = 1.0) -> int:
    """Put back jobs a dead worker had taken off the queue but not yet started.

    RQ moves a job to `<queue>:intermediate` when a worker takes it and removes it once the
    job is registered as started, microseconds later. A job still there a second later,
    and not started, belongs to a worker that died in between; RQ itself would fail it
    only after a minute plus a maintenance pass.
    """
    queue = make_queue(redis)
    intermediate = f"{queue.key}:intermediate"
    first = set(redis.lrange(intermediate, 0, -1))
    if not first:
        return 0
    time.sleep(settle_seconds)
    started = {
        StartedJobRegistry(queue=queue).parse_job_id(m)
        for m in redis.zrange(StartedJobRegistry(queue=queue).key, 0, -1)
    }
    recovered = 0
    for raw in set(redis.lrange(intermediate, 0, -1)) & first:
        job_id = raw.decode()
        if job_id in started:
            continue
        with redis.pipeline() as pipe:
            pipe.lrem(intermediate, 1, raw)
            pipe.lpush(queue.key, raw)  # the front: it was next once already
            pipe.execute()
        recovered += 1
    if recovered:
        log.warning("put back %d job(s) a dead worker had taken", recovered)
    return recovered


def recover_inbox(redis: Redis) -> int:
    """What older relays' drain jobs took and will never finish (the job failed for good, or
    is gone) goes back to the inbox. (Dead workers' lists are the dispatcher's to take over:
    relay/delivery/dispatcher.py.)"""
    inbox = Inbox(redis)
    moved = 0
    for drain_id in inbox.orphaned_inflight():
        if drain_id in inbox.owners():
            continue  # a worker's list: its lease says whether it is alive
        try:
            status = Job.fetch(
                f"drain-{drain_id}", connection=redis, serializer=JSONSerializer
            ).get_status()
        except NoSuchJobError:
            status = None
        if status in (
            None,
            JobStatus.FAILED,
            JobStatus.FINISHED,
            JobStatus.CANCELED,
            JobStatus.STOPPED,
        ):
            moved += inbox.give_back(drain_id)
    if moved:
        log.warning("gave %d event(s) of an older relay's drain back to the inbox", moved)
    return moved


class RelayWorker(SimpleWorker):
    """RQ's SimpleWorker, whose maintenance pass also hands dead workers' jobs back at once,
    drops dead letters past their retention time even when no new one arrives, and asks
    which workspace the data lands in (at start, then hourly: relay/delivery/account.py)."""

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        super()._start_scheduler(*args, **kwargs)
        if self.scheduler is not None:  # its lock names the scheduler, not this worker
            note_scheduler_owner(self.connection, self.scheduler.name, self.name)

    def run_maintenance_tasks(self) -> None:
        with contextlib.suppress(RedisError):  # before RQ's pass, which then takes the lock
            release_dead_scheduler_lock(self.connection)
        super().run_maintenance_tasks()
        try:
            recover_abandoned_jobs(self.connection)
            context = worker_context.current()
            context.dead_letters.trim()
            refresh_if_stale(context.settings, context.redis)
        except RedisError:
            log.warning("could not check for dead workers and old dead letters")


def _scheduler_gone(host: str, pid: int, info: dict[bytes, bytes]) -> bool:
    """RQ records the scheduler's host and pid but not its start time: a live pid that
    started after the scheduler registered is another process (pids are reused)."""
    if local_process_dead(host, pid):
        return True
    began, created = started_at(pid), info.get(b"created_at")
    if host != HOST or began is None or not created:
        return False
    return began > utcparse(created.decode()).timestamp() + 1


def release_dead_scheduler_lock(redis: Redis) -> bool:
    """Free the retry scheduler's lock if the worker holding it died: its lease is gone
    (any host), or its scheduler process is gone (this host).

    Otherwise scheduled retries would wait for the lock to expire (about a minute) and for
    a worker's next maintenance pass.
    """
    lock_key = f"rq:scheduler-lock:{QUEUE_NAME}"
    holder = redis.get(lock_key)
    if holder is None:
        return False
    owner = redis.get(SCHEDULER_OWNER.format(holder.decode()))
    if owner is not None:  # a relay worker's scheduler: its lease says
        return _gone(redis, owner.decode()) and _release_scheduler_lock(redis, lock_key, holder)
    info = redis.hgetall(f"rq:scheduler:{holder.decode()}")
    host, pid = info.get(b"hostname", b"").decode(), info.get(b"pid", b"0").decode()
    if not info or (pid.isdigit() and _scheduler_gone(host, int(pid), info)):
        return _release_scheduler_lock(redis, lock_key, holder)
    return False


def _release_scheduler_lock(redis: Redis, lock_key: str, holder: bytes) -> bool:
    with redis.pipeline() as pipe:  # delete only if it is still the dead one's
        pipe.watch(lock_key)
        if pipe.get(lock_key) == holder:
            pipe.multi()
            pipe.delete(lock_key)
            pipe.execute()
    log.warning("released the retry scheduler lock of a dead worker")
    return True


def note_scheduler_owner(redis: Redis, scheduler: str, worker: str) -> None:
    """Which worker (and so which lease) a scheduler belongs to: RQ records only the host
    and pid of its forked scheduler process, which another host cannot check."""
    redis.set(SCHEDULER_OWNER.format(scheduler), worker, ex=SCHEDULER_OWNER_DAYS * 86_400)


def recover_abandoned_jobs(redis: Redis) -> int:
    """Hand the started jobs of dead workers (on any host: their lease expired) to RQ's
    abandoned-job handling now, instead of after the job's timeout and a minute."""
    queue = make_queue(redis)
    registry = StartedJobRegistry(queue=queue)
    expired = 0
    for member in redis.zrange(registry.key, 0, -1):
        job_id = registry.parse_job_id(member)
        try:
            job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        except Exception:
            continue
        if job.worker_name and _gone(redis, job.worker_name):
            redis.zadd(registry.key, {member: 0}, xx=True)  # expired: cleanup takes it
            expired += 1
    if expired:
        registry.cleanup()
        log.warning("re-queued %d job(s) of dead workers", expired)
    return expired


def schedule_store_runs(redis: Redis, settings: Settings, now: float | None = None) -> list[str]:
    """Queue what is due for each configured store: this interval's reconcile run (exactly
    one worker wins its claim) and the completion of wanted products. The jobs they name
    run the store I/O (relay/jobs.py); delivery itself never talks to a store."""
    queued = []
    for platform in sorted(settings.stores):
        slot = sync_signals.claim_reconcile(
            redis, platform, settings.reconcile_interval_seconds, now
        )
        if slot:
            enqueue_store_job(
                redis, RECONCILE_STORE, platform, slot, job_id=f"reconcile-{platform}-{slot}"
            )
            queued.append(f"reconcile {platform}")
        if sync_signals.claim_completion(redis, platform, now):
            enqueue_store_job(redis, COMPLETE_PRODUCTS, platform)
            queued.append(f"complete {platform}")
    return queued


def store_schedule_tick(settings: Settings) -> float:
    """How often the workers look: often enough for the interval, at most every 5 s."""
    interval = settings.reconcile_interval_seconds
    return min(5.0, max(0.5, interval / 4)) if interval > 0 else 5.0


def _store_schedule(redis: Redis, settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(store_schedule_tick(settings)):
        try:
            schedule_store_runs(redis, settings)
        except RedisError:
            log.warning("could not check the store runs' schedule")


def wait_for_redis(url: str) -> None:
    client = connect(url, socket_timeout=2.0)
    delay, announced = 0.2, False
    while True:
        try:
            client.ping()
            return
        except (RedisError, OSError):
            if not announced:
                log.warning("Redis is unreachable; waiting for it")
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_worker(settings: Settings, registry: Registry, burst: bool = False) -> None:
    assert settings.redis_url
    wait_for_redis(settings.redis_url)
    # The worker's own connection blocks on BLMOVE for a while: no socket timeout on it.
    queue_redis = connect(settings.redis_url, socket_timeout=None)
    redis = connect(
        settings.redis_url,
        socket_timeout=5.0,
        max_connections=settings.delivery_concurrency * 2 + 16,
    )
    context = worker_context.build(settings, redis, registry)
    worker_context.install(context)
    # RQ logs each job's arguments at INFO: those are customer data. Keep RQ to warnings.
    logging.getLogger("rq").setLevel(logging.WARNING)
    lease: Lease | None = None
    stop = threading.Event()
    dispatcher: threading.Thread | None = None
    try:
        lease = Lease(redis, context.owner).start()
        recover_abandoned_jobs(queue_redis)
        recover_intermediate_jobs(queue_redis)
        recover_inbox(queue_redis)
        release_dead_scheduler_lock(queue_redis)
        if burst:
            _burst(context, queue_redis)
            return
        dispatcher = context.dispatcher.run_in_background(stop)
        if settings.stores:
            threading.Thread(
                target=_store_schedule,
                args=(redis, settings, stop),
                name="relay-store-schedule",
                daemon=True,
            ).start()
        gc.freeze()  # shared with the scheduler process RQ forks: keep the pages shared
        end_forked_children_with_this_process()  # RQ's scheduler must not outlive a SIGKILL
        _rq_worker(context, queue_redis).work(with_scheduler=True, logging_level="WARNING")
    except (RedisError, OSError) as exc:
        _lost_redis(settings, exc)
    finally:
        stop.set()
        if dispatcher is not None:
            dispatcher.join(timeout=settings.api_timeout_seconds + 10)
        if lease is not None:
            lease.stop()
    if isinstance(context.dispatcher.failed, RedisError | OSError):
        _lost_redis(settings, context.dispatcher.failed)
    if context.dispatcher.failed is not None:
        sys.exit(1)


def _rq_worker(context: worker_context.WorkerContext, queue_redis: Redis) -> RelayWorker:
    return RelayWorker(
        [make_queue(queue_redis)],
        connection=queue_redis,
        serializer=JSONSerializer,
        name=f"relay:{context.owner}",
        maintenance_interval=MAINTENANCE_INTERVAL,
        # An idle worker blocks on the queue for worker_ttl - 15 s between maintenance
        # passes (where it also takes over the scheduler of a dead worker).
        worker_ttl=MAINTENANCE_INTERVAL + 15,
    )


def _burst(context: worker_context.WorkerContext, queue_redis: Redis) -> None:
    """`relay worker --burst`: the inbox and the RQ jobs due now, until neither has more
    (a retry that falls due hands its requests back through the inbox)."""
    while True:
        taken = context.dispatcher.run(burst=True)
        worked = _rq_worker(context, queue_redis).work(
            burst=True, with_scheduler=True, logging_level="WARNING"
        )
        if not taken and not worked:
            return


def _lost_redis(settings: Settings, exc: BaseException) -> None:
    assert settings.redis_url
    log.warning("lost Redis (%s); restarting when it is back", type(exc).__name__)
    wait_for_redis(settings.redis_url)
    sys.exit(EX_TEMPFAIL)
