"""`relay run`: the whole relay as one process tree.

    relay run
      ├─ redis-server        (embedded, when RELAY_REDIS_URL is unset)
      ├─ relay web           gunicorn master + its workers
      └─ relay worker (N)    RQ SimpleWorker with the retry scheduler

A child that dies is restarted (a crash loop stops the relay instead). So is the embedded
redis-server, on its own configuration (same socket, or same port and password), so the
URL the other children hold stays valid: the web server answers 503 meanwhile, the workers
wait for it, and the append-only file brings back every accepted event. SIGTERM or SIGINT
stops it cleanly: the web server first (requests in flight finish), then the workers (each
finishes its job in flight; anything unfinished stays queued in Redis), then Redis, which
flushes its append-only file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from relay.runtime.embedded_redis import EmbeddedRedis
from relay.settings import Settings

log = logging.getLogger("relay.supervisor")
MAX_RESTARTS_PER_MINUTE = 5
EX_TEMPFAIL = 75  # a worker that lost Redis and waited for it to return


@dataclass
class Child:
    name: str
    argv: list[str]
    stop_timeout: float
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)
    restart_at: float | None = None  # when a child that exited is due to start again

    def start(self, env: dict[str, str]) -> None:
        # A session of its own: a terminal's Ctrl+C reaches only the supervisor, which then
        # stops the children in order (gunicorn would treat SIGINT as "quit now").
        self.process = subprocess.Popen(
            self.argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill_leftovers(self) -> None:
        """Kill what the child left in its process group (RQ's scheduler process)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait_or_kill(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, self.stop_timeout)
            self.process.kill()
            self.process.wait()
        self.kill_leftovers()


class EmbeddedRedisChild(Child):
    """The embedded redis-server, restarted by the same rules as the other children."""

    def __init__(self, server: EmbeddedRedis):
        super().__init__("redis-server", [server.binary], stop_timeout=15)
        self.server = server
        self.process = server.process

    def start(self, env: dict[str, str]) -> None:
        self.server.restart()
        self.process = self.server.process
        assert self.process is not None
        log.info("restarted %s (pid %d) on %s", self.name, self.process.pid, self.server.data_dir)


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stopping = False
        self.exit_code = 0
        self.redis: EmbeddedRedis | None = None
        self.redis_child: EmbeddedRedisChild | None = None
        python = sys.executable
        self.web = Child("web", [python, "-m", "relay", "web"], stop_timeout=30)
        self.workers = [
            Child(
                f"worker-{n}",
                [python, "-m", "relay", "worker"],
                stop_timeout=settings.job_timeout_seconds + 10,
            )
            for n in range(1, settings.workers + 1)
        ]

    @property
    def children(self) -> list[Child]:
        return [self.web, *self.workers]

    @property
    def restartable(self) -> list[Child]:
        """Redis first: the others need it."""
        return ([self.redis_child] if self.redis_child else []) + self.children

    def _request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        env = dict(os.environ)
        # The web server's /metrics counts these workers; several workers on one port would
        # fight over it.
        env.pop("RELAY_WORKER_METRICS_BIND", None)
        if self.settings.embedded_redis:
            self.redis = EmbeddedRedis(self.settings.data_dir, self.settings.redis_fsync).start()
            self.redis_child = EmbeddedRedisChild(self.redis)
            env["RELAY_REDIS_URL"] = self.redis.url
            log.info(
                "embedded redis-server on %s (data in %s)",
                self.redis.url_without_password,
                self.redis.data_dir,
            )
        try:
            for child in self.children:
                child.start(env)
            mode = "sandbox: nothing is sent" if self.settings.sandbox else "live"
            log.info("relay listening on http://%s (%s)", self.settings.bind, mode)
            while not self.stopping:
                time.sleep(0.2)
                self._restart_exited(env)
        finally:
            self._shutdown()
        return self.exit_code

    def _restart_exited(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.restartable:
            if self.stopping:
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    child.start(env)
                continue
            code = child.exited()
            if code is None:
                continue
            child.kill_leftovers()
            if code == EX_TEMPFAIL and child is not self.redis_child:
                # A worker lost Redis and waited for it: start afresh at once.
                log.warning("%s restarts after a Redis outage", child.name)
                child.start(env)
                continue
            while child.restarts and now - child.restarts[0] > 60:
                child.restarts.popleft()
            if len(child.restarts) >= MAX_RESTARTS_PER_MINUTE:
                log.error("%s keeps exiting (last code %s); stopping the relay", child.name, code)
                self.exit_code = 1
                self.stopping = True
                return
            child.restarts.append(now)
            delay = 0.5 * 2 ** (len(child.restarts) - 1)  # 0.5 s, 1 s, 2 s, 4 s, 8 s
            log.warning("%s exited with code %s; restarting it in %.1f s", child.name, code, delay)
            child.restart_at = now + delay

    def _shutdown(self) -> None:
        # Web first, so nothing new arrives while the workers drain.
        for group in ([self.web], self.workers):
            for child in group:
                child.terminate()
            for child in group:
                child.wait_or_kill()
        if self.redis is not None:
            self.redis.stop()
        log.info("relay stopped")
