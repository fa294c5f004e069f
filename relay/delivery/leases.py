"""Worker leases: how a worker on any host tells the others it is alive, so that what a dead
one held is taken over within seconds instead of when a timeout runs out.

    relay:lease:<owner>   a key with a LEASE_TTL_SECONDS expiry, renewed every
                          RENEW_EVERY_SECONDS by a thread of the worker

Everything a worker holds names its owner: its in-flight list (relay/inbox.py), its entity
locks (relay/delivery/entity_state.py), its RQ jobs (the worker name). A holder whose lease
key is gone is dead, on whatever host it ran: no process-id checks, which only work on one
host. A worker stopped with SIGKILL is noticed at most LEASE_TTL_SECONDS later.

A live worker that cannot renew its lease for LEASE_TTL_SECONDS (Redis unreachable for that
long) is taken for dead too; it notices when it renews again and says so in the log.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from redis import Redis, RedisError

log = logging.getLogger("relay.worker")
LEASE_TTL_SECONDS = 10.0
RENEW_EVERY_SECONDS = 2.0


def lease_key(owner: str) -> str:
    return f"relay:lease:{owner}"


def alive(redis: Redis, owner: str) -> bool:
    return bool(redis.exists(lease_key(owner)))


class Lease:
    def __init__(
        self,
        redis: Redis,
        owner: str,
        ttl_seconds: float = LEASE_TTL_SECONDS,
        renew_every: float = RENEW_EVERY_SECONDS,
    ):
        self.redis = redis
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)
        self.renew_every = renew_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Lease:
        self.redis.set(lease_key(self.owner), "1", px=self.ttl_ms)
        self._thread = threading.Thread(target=self._renew_loop, name="relay-lease", daemon=True)
        self._thread.start()
        return self

    def _renew_loop(self) -> None:
        failing = False
        while not self._stop.wait(self.renew_every):
            try:
                # XX first: a lease that expired meanwhile means others took this worker
                # for dead and may have taken over what it held.
                if not self.redis.set(lease_key(self.owner), "1", px=self.ttl_ms, xx=True):
                    log.error(
                        "this worker's lease had expired (Redis unreachable, or the process "
                        "stalled): its in-flight events may have been taken over"
                    )
                    self.redis.set(lease_key(self.owner), "1", px=self.ttl_ms)
                failing = False
            except RedisError:
                if not failing:
                    log.warning("could not renew this worker's lease")
                failing = True

    def stop(self) -> None:
        """End the lease (a clean stop: the worker gave back what it held)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(RedisError):  # else it expires by itself
            self.redis.delete(lease_key(self.owner))
