"""Taking over what a killed worker held: its jobs, its entity locks, its scheduler lock.
A worker is dead when its lease (relay/delivery/leases.py) is gone, on whatever host it ran."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from relay.delivery.entity_state import EntityStore, LockTimeout
from relay.delivery.leases import Lease, lease_key
from relay.delivery.worker import (
    note_scheduler_owner,
    recover_abandoned_jobs,
    recover_intermediate_jobs,
    release_dead_scheduler_lock,
)
from relay.event_queue import EventQueue, make_queue
from relay.events import new_event_id
from relay.runtime.processes import HOST


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def queued_event(redis) -> Job:
    """A job in the queue: a product flush, as a worker queues one."""
    batch = new_event_id()
    EventQueue(redis).enqueue_flush(batch)
    return Job.fetch(f"flush-{batch}-1", connection=redis, serializer=JSONSerializer)


def take_as_started(redis, job: Job, worker_name: str) -> None:
    """What a worker does when it starts a job, up to the moment it would run it."""
    queue = make_queue(redis)
    redis.lrem(queue.key, 1, job.id)
    with redis.pipeline() as pipe:
        job.prepare_for_execution(worker_name, pipe)
        pipe.zadd(StartedJobRegistry(queue=queue).key, {f"{job.id}:x1": time.time() + 600})
        pipe.execute()


def test_jobs_of_a_dead_worker_are_retried_at_once(redis):
    job = queued_event(redis)
    take_as_started(redis, job, "relay:another-host:7:abc")  # no lease: dead, on any host
    assert recover_abandoned_jobs(redis) == 1
    queue = make_queue(redis)
    assert redis.zcard(StartedJobRegistry(queue=queue).key) == 0
    # RQ's own retry path: the attempt counts, and it runs again after the first interval.
    assert job.id in ScheduledJobRegistry(queue=queue).get_job_ids()


def test_jobs_of_live_workers_are_left_alone(redis):
    mine, remote = queued_event(redis), queued_event(redis)
    Lease(redis, f"{HOST}:1:abc").start().stop()  # a lease that ended: that worker stopped
    redis.set(lease_key("another-host:1:abc"), "1", px=60_000)  # alive, elsewhere
    take_as_started(redis, remote, "relay:another-host:1:abc")
    live = Lease(redis, f"{HOST}:2:abc").start()
    try:
        take_as_started(redis, mine, f"relay:{HOST}:2:abc")
        assert recover_abandoned_jobs(redis) == 0
        assert redis.zcard(StartedJobRegistry(queue=make_queue(redis)).key) == 2
    finally:
        live.stop()


def test_job_taken_but_never_started_goes_back_to_the_front(redis):
    first, second = queued_event(redis), queued_event(redis)
    queue = make_queue(redis)
    redis.lmove(queue.key, f"{queue.key}:intermediate", "RIGHT", "LEFT")  # a worker took it
    assert recover_intermediate_jobs(redis, settle_seconds=0.05) == 1
    assert redis.llen(f"{queue.key}:intermediate") == 0
    assert queue.get_job_ids() == [second.id, first.id]


def test_dead_schedulers_lock_is_released_live_ones_kept(redis):
    lock = "rq:scheduler-lock:relay"
    redis.set(lock, "sched-dead")
    redis.hset("rq:scheduler:sched-dead", mapping={"hostname": HOST, "pid": dead_pid()})
    assert release_dead_scheduler_lock(redis)
    assert redis.get(lock) is None
    redis.set(lock, "sched-alive")
    redis.hset("rq:scheduler:sched-alive", mapping={"hostname": HOST, "pid": os.getpid()})
    assert not release_dead_scheduler_lock(redis)
    assert redis.get(lock) == b"sched-alive"


def test_the_scheduler_lock_of_a_worker_dead_on_another_host_is_released(redis):
    lock = "rq:scheduler-lock:relay"
    scheduler = {"hostname": "another-host", "pid": "4242", "created_at": "2026-12-01T00:00:00Z"}
    redis.hset("rq:scheduler:sched-there", mapping=scheduler)
    redis.set(lock, "sched-there")
    note_scheduler_owner(redis, "sched-there", "relay:another-host:4242:abc")
    redis.set(lease_key("another-host:4242:abc"), "1", px=60_000)
    assert not release_dead_scheduler_lock(redis)  # its worker's lease is alive
    redis.delete(lease_key("another-host:4242:abc"))  # killed there: the lease expired
    assert release_dead_scheduler_lock(redis)
    assert redis.get(lock) is None


def test_entity_lock_of_a_dead_holder_is_taken_over(redis):
    store = EntityStore(redis, lock_ttl_seconds=60, owner="me")
    # Its holder's lease is gone (killed, on another host): taken over at once.
    redis.set("relay:lock:order:1", "another-host:9:1|abcdef", px=60000)
    with store.lock("order:1", wait_seconds=0.5):
        assert redis.get("relay:lock:order:1").startswith(b"me|")
    # Its holder is alive: the lock waits, then times out.
    redis.set(lease_key("another-host:1:1"), "1", px=60_000)
    redis.set("relay:lock:order:2", "another-host:1:1|abcdef", px=60000)
    with pytest.raises(LockTimeout), store.lock("order:2", wait_seconds=0.2):
        pass
    # A holder that names no lease (an older relay's value) is never taken over: it expires.
    redis.set("relay:lock:order:3", "old-host:1:1:abcdef", px=60000)
    with pytest.raises(LockTimeout), store.lock("order:3", wait_seconds=0.2):
        pass


def test_a_reused_pid_is_not_mistaken_for_the_dead_holder(redis):
    from relay.runtime.processes import owner_dead, owner_tag

    assert not owner_dead(owner_tag())  # this very process
    pid = os.getpid()
    assert owner_dead(f"{HOST}:{pid}:1")  # same pid, another start time: a new process


def test_two_workers_start_one_reconcile_run_per_interval(redis_server, redis, fake_api, tmp_path):
    """Real `relay worker` processes with a store configured: whatever the number of workers,
    each interval's reconcile runs once (its slot claimed with SET NX)."""
    from relay.sync.service import history
    from tests.conftest import wait_until, worker_env
    from tests.fakestore import KEY, SECRET, FakeStore

    store = FakeStore(products=6, customers=4, orders=4).start()
    env = worker_env(
        redis_server.url,
        fake_api.url,
        RELAY_WOOCOMMERCE_STORE_URL=store.url,
        RELAY_WOOCOMMERCE_CONSUMER_KEY=KEY,
        RELAY_WOOCOMMERCE_CONSUMER_SECRET=SECRET,
        RELAY_WOOCOMMERCE_MAX_RPS="1000",
        RELAY_RECONCILE_INTERVAL="1s",
    )
    workers = [
        subprocess.Popen([sys.executable, "-m", "relay", "worker"], env=env) for _ in range(2)
    ]
    try:
        wait_until(lambda: len(history(redis, "woocommerce", "reconcile")) >= 4, timeout=60)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        store.stop()
    runs = history(redis, "woocommerce", "reconcile")
    slots = [run["slot"] for run in runs]
    assert len(slots) == len(set(slots)), slots  # never two runs for one interval
    assert all(slot > 0 for slot in slots)
    assert {run["status"] for run in runs} == {"done"}
    # Each run read the store's webhooks once: no run the history does not show.
    assert store.count("GET", "/webhooks") == len(runs)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then ppid)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry))
    return found


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_sigkilled_workers_retry_scheduler_does_not_outlive_it(redis_server, redis, fake_api):
    """RQ forks its scheduler from the worker; SIGKILL runs no cleanup, so that child went
    on running (and holding the scheduler lock) on its own."""
    from tests.conftest import wait_until, worker_env

    env = worker_env(redis_server.url, fake_api.url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "relay", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _children(worker.pid), timeout=60, what="the worker's scheduler")
        [scheduler] = _children(worker.pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        wait_until(lambda: not _running(scheduler), timeout=30, what="the scheduler ending")
    finally:
        if worker.poll() is None:
            worker.kill()
