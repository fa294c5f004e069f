"""gunicorn's gevent worker, with deadlines on a sender's body and a cap per client address.

A sync worker that waits on a stalled sender is killed by gunicorn's arbiter after its
timeout; a greenlet is not, so a sender that vanished in the middle of its body (a half-open
connection) or trickles it a byte at a time would hold one of the worker's connections for
as long as it likes, and enough of them would stop ingest. So:

- each read waits at most READ_TIMEOUT_SECONDS for data;
- the whole body must arrive within BODY_DEADLINE_SECONDS of its headers (a trickle never
  trips the first). Ingest answers 408 `body_timeout` either way (relay/intake/webhooks.py), and the
  connection is closed;
- one client address holds at most MAX_CONNECTIONS_PER_CLIENT connections at once: a slow
  sender costs its own slots, not the service. More are answered 429 at once and closed.
  Not applied under RELAY_TRUST_PROXY=yes, where every connection is the proxy's: the proxy
  buffers bodies and limits its clients (deploy/README.md).

gunicorn already closes a connection that does not send its request line and headers within
the keep-alive time. Imported by gunicorn in the web server only (`worker_class` names it),
so no other process loads gevent.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import time
from typing import Any

import gevent
import orjson
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

log = logging.getLogger("relay.web")
# Longest silence while a body arrives. WooCommerce itself gives up on a delivery after 60 s.
READ_TIMEOUT_SECONDS = 30.0
# Longest time for a whole body: 2 MB (RELAY_MAX_BODY_BYTES) at 70 KB/s, while a platform's
# servers send a webhook in milliseconds.
BODY_DEADLINE_SECONDS = 30.0
# Connections open at once from one address (an IPv6 client: its /64), per web process. A
# platform sends a webhook in a few milliseconds over one or a few connections.
MAX_CONNECTIONS_PER_CLIENT = 32

_TOO_MANY = orjson.dumps(
    {
        "error": {
            "code": "too_many_connections",
            "message": "this address has too many connections open to the relay",
        }
    }
)
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TOO_MANY), _TOO_MANY)
)


def client_key(addr: Any) -> str:
    """Whose connection this is: the IPv4 address, or an IPv6 address's /64 (what one
    client gets from its provider)."""
    host = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
    if ":" not in host:
        return host
    try:
        ip = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False).network_address)


class DeadlineBody:
    """A request body (gunicorn's `Body`, as `wsgi.input`) that must arrive by `deadline`.

    A read that would run past it raises TimeoutError, which ingest answers 408; the
    connection is then shut for reading, so the rest of the body is never waited for and
    the connection closes after the answer."""

    def __init__(self, body: Any, sock: socket.socket, deadline: float):
        self._body = body
        self._sock = sock
        self._deadline = deadline
        self._expired = False

    def read(self, size: int | None = None) -> bytes:
        return self._within(self._body.read, size) if not self._expired else b""

    def readline(self, size: int | None = None) -> bytes:
        return self._within(self._body.readline, size) if not self._expired else b""

    def readlines(self, size: int | None = None) -> list[bytes]:
        return self._within(self._body.readlines, size) if not self._expired else []

    def __iter__(self) -> DeadlineBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _within(self, read: Any, size: int | None) -> Any:
        left = self._deadline - time.monotonic()
        if left <= 0:
            self._expire()
        timer = gevent.Timeout(left)
        timer.start()
        try:
            return read(size)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._expire()
        finally:
            timer.close()

    def _expire(self) -> None:
        self._expired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        raise TimeoutError("the body did not arrive within the deadline")


class RelayGeventWorker(GeventWorker):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        settings = getattr(self.app, "settings", None)  # the RelayWebServer's
        behind_proxy = bool(getattr(settings, "trust_proxy", False))
        self.connection_cap = None if behind_proxy else MAX_CONNECTIONS_PER_CLIENT
        self.open_connections: dict[str, int] = {}
        self.refusing: set[str] = set()  # addresses at the cap, already logged

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        key = client_key(addr)
        held = self.open_connections.get(key, 0)
        if self.connection_cap is not None and held >= self.connection_cap:
            self._refuse(client, key)
            return
        self.open_connections[key] = held + 1
        try:
            # GeventWorker.handle makes the socket blocking (no deadline) and calls on.
            client.settimeout(READ_TIMEOUT_SECONDS)
            AsyncWorker.handle(self, listener, client, addr)
        finally:
            left = self.open_connections[key] - 1
            if left:
                self.open_connections[key] = left
            else:
                del self.open_connections[key]
            self.refusing.discard(key)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        if req.body is not None:
            req.body = DeadlineBody(req.body, sock, time.monotonic() + BODY_DEADLINE_SECONDS)
        return super().handle_request(listener_name, req, sock, addr)

    def _refuse(self, client: Any, key: str) -> None:
        """Answer without reading anything, and close."""
        if key not in self.refusing:  # one line per episode, not per refusal
            self.refusing.add(key)
            log.warning(
                "too many connections from one address",
                extra={"remote": key, "code": "too_many_connections"},
            )
        try:
            client.settimeout(1.0)
            client.sendall(TOO_MANY_CONNECTIONS)
        except OSError:
            pass
        finally:
            client.close()
