"""One process talks to a store at a time: `relay sync`, `relay reconcile`, `relay connect` and
the workers' runs (relay/sync/service.py) all take the store's lock first.

    relay:sync:<platform>:lock    the holder's tag (host:pid:start), with a TTL that a thread
                                  of the holder renews

A holder that dies (SIGKILL, a crash) leaves the lock until its TTL runs out, unless the next
claimant is on the same host and sees that the process is gone: then it takes the lock at
once, so that a killed `relay sync` can be run again right away.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from redis import Redis, RedisError

from relay.runtime.processes import owner_dead, owner_tag

log = logging.getLogger("relay.sync")
TTL_SECONDS = 30.0
RENEW_EVERY = 5.0

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def lock_key(platform: str) -> str:
    return f"relay:sync:{platform}:lock"


class StoreBusy(Exception):
    """Another process holds the store (its tag is the message)."""


class StoreLock:
    def __init__(self, redis: Redis, platform: str, owner: str | None = None):
        self.redis = redis
        self.key = lock_key(platform)
        self.owner = owner or owner_tag()
        self.lost = threading.Event()  # the lock expired or was taken while held
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def holder(self) -> str | None:
        raw = self.redis.get(self.key)
        return raw.decode() if raw else None

    def try_acquire(self) -> bool:
        ttl = int(TTL_SECONDS * 1000)
        if self.redis.set(self.key, self.owner, nx=True, px=ttl):
            self._start()
            return True
        holder = self.holder()
        if holder and holder != self.owner and owner_dead(holder):
            with self.redis.pipeline() as pipe:  # only if it is still the dead one's
                pipe.watch(self.key)
                if pipe.get(self.key) == holder.encode():
                    pipe.multi()
                    pipe.set(self.key, self.owner, px=ttl)
                    with contextlib.suppress(Exception):
                        pipe.execute()
            if self.holder() == self.owner:
                log.warning("took over the store lock of a process that died")
                self._start()
                return True
        return False

    def acquire(self, wait_seconds: float = 0.0) -> None:
        """Take the lock, waiting up to `wait_seconds`; StoreBusy with the holder's tag."""
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise StoreBusy(self.holder() or "another process")
            time.sleep(0.5)

    def _start(self) -> None:
        self.lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="relay-store-lock", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                if not self._renew(keys=[self.key], args=[self.owner, int(TTL_SECONDS * 1000)]):
                    log.error("the store lock was lost (expired or taken): stopping this run")
                    self.lost.set()
                    return
            except RedisError:
                log.warning("could not renew the store lock")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(RedisError):
            self._release(keys=[self.key], args=[self.owner])

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
