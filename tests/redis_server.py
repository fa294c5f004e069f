"""A real redis-server on a free loopback port, for tests and the fault suite."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis

from relay.runtime.embedded_redis import find_redis_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """`appendfsync=None`: no persistence (fast tests); "always": every acknowledged write
    is on disk, as the relay's embedded Redis runs."""

    def __init__(self, directory: Path, appendfsync: str | None = None, unix: bool = False):
        self.directory = directory
        self.port = free_port()
        self.appendfsync = appendfsync
        self.socket = (directory / "redis.sock").resolve() if unix else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The unix socket when there is one: what `relay run`'s embedded Redis uses."""
        if self.socket is not None:
            return f"unix://{self.socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
        ]
        if self.socket is not None:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.appendfsync:
            args += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def cap_replies(self, max_bytes: int) -> None:
        """Close any client whose pending reply grows beyond `max_bytes`, as a Redis short
        of memory would: a command that loads too much at once fails instead of passing."""
        limit = f"normal {max_bytes} {max_bytes} 0"
        Redis.from_url(self.url).config_set("client-output-buffer-limit", limit)

    def crash(self) -> None:
        """SIGKILL: no shutdown save; the append-only file is all that remains."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: a hung Redis. Connections are still accepted by the kernel, and commands
        wait in the socket until `resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot stop
            self.process.terminate()
            self.process.wait(10)
