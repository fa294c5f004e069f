"""`relay worker`: an RQ worker that runs jobs in-process, with the retry scheduler.

SimpleWorker, not RQ's default forking Worker: forking per job costs ~20 ms and throws away
the keep-alive HTTP session to the Commerce API. Scale with more worker processes.
"""

from __future__ import annotations

import logging

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from relay import worker_context
from relay.event_queue import make_queue
from relay.redis_conn import connect
from relay.registry import Registry
from relay.settings import Settings

# A worker killed mid-job is noticed by the next maintenance pass of another worker (or of
# this one after a restart). RQ's default of 600 s would leave such an event waiting ten
# minutes; checking every 30 s costs a few Redis commands.
MAINTENANCE_INTERVAL = 30


def run_worker(settings: Settings, registry: Registry, burst: bool = False) -> bool:
    assert settings.redis_url
    # The worker's own connection blocks on BLMOVE for a while: no socket timeout on it.
    queue_redis = connect(settings.redis_url, socket_timeout=None)
    worker_context.install(
        worker_context.build(settings, connect(settings.redis_url, socket_timeout=5.0), registry)
    )
    # RQ logs each job's arguments at INFO: those are customer data. Keep RQ to warnings.
    logging.getLogger("rq").setLevel(logging.WARNING)
    worker = SimpleWorker(
        [make_queue(queue_redis)],
        connection=queue_redis,
        serializer=JSONSerializer,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    return worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")
