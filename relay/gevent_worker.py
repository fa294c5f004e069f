"""gunicorn's gevent worker, with a deadline on every read from a sender.

A sync worker that waits on a stalled sender is killed by gunicorn's arbiter after its
timeout; a greenlet is not, so a sender that vanished in the middle of its body (a half-open
connection) would hold one of the worker's connections for good, and enough of them would
stop ingest. gunicorn already closes a connection that does not send its request line and
headers within the keep-alive time; this bounds each wait for the body too. Ingest answers
408 when it runs out (relay/ingest.py).

Imported by gunicorn in the web server only (`worker_class` names it), so no other process
loads gevent.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

# Longest silence while a body arrives. WooCommerce itself gives up on a delivery after 60 s.
READ_TIMEOUT_SECONDS = 30.0


class RelayGeventWorker(GeventWorker):
    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # GeventWorker.handle makes the socket blocking (no deadline) and calls on.
        client.settimeout(READ_TIMEOUT_SECONDS)
        AsyncWorker.handle(self, listener, client, addr)
