"""The runner (relay/sync/runner.py): backpressure on the inbox."""

from __future__ import annotations

import threading
import time

from relay.inbox import INBOX
from relay.registry import default_registry
from relay.sync.checkpoints import Checkpoints, Run
from relay.sync.runner import Runner
from tests.conftest import wait_until
from tests.fakestore import FakeStore
from tests.sync.conftest import open_fake, with_store


def test_a_sync_waits_while_more_events_wait_for_delivery_than_it_allows(settings, redis):
    fake = FakeStore(products=250, variable_every=0, customers=1, orders=1).start()
    store = open_fake(with_store(settings, fake), redis)
    thread = None
    try:
        checkpoints = Checkpoints(redis, "woocommerce", "backfill")
        run = Run("woocommerce", "backfill", "run-1", store.client.backfill(None, "2999-01-01"))
        checkpoints.begin(run)
        platform = default_registry().get("woocommerce")
        runner = Runner(redis, platform, store.client, checkpoints, stop=store.stop, max_waiting=50)
        thread = threading.Thread(target=runner.run, args=(run,), daemon=True)
        thread.start()
        wait_until(lambda: redis.llen(INBOX) >= 100, what="the first page")
        time.sleep(1.0)  # it would have read the other pages by now
        assert redis.llen(INBOX) == 100  # one page: then it waits for the workers
        assert fake.count("GET", "/products") == 2  # the next page read, held, not pushed

        # As if the workers delivered what waits: the sync goes on, page after page.
        wait_until(
            lambda: redis.delete(INBOX) >= 0 and checkpoints.phase("products").done,
            what="the products phase",
        )
        assert checkpoints.phase("products").pushed == len(fake.published())
    finally:
        store.stop.set()
        if thread is not None:
            thread.join(10)
        fake.stop()
