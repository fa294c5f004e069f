"""Variant completion: a variation whose product's variant list the relay does not know is
held by planning (relay/delivery/planning.py), which records the product as wanted in Redis
(relay/sync_signals.py). Here the product is fetched whole from the store, with every
variation, and pushed into the inbox like a webhook: the workers then know the list and send
the held variation with its siblings (a partial list would delete the missing variants).

Run by a worker's job (relay/jobs.py) when the workers' scheduling sees wanted products, or
by `relay reconcile`. A store that fails is asked again later (RETRY_SECONDS), not in a loop.
"""

from __future__ import annotations

import logging
import time

from relay import sync_signals
from relay.inbox import Entry, push
from relay.store_api import ORIGIN_COMPLETION, StoreAuthError, StoreError
from relay.sync.runner import store_event

log = logging.getLogger("relay.sync")
BATCH = 50  # products per job (at the store's pace)
RETRY_SECONDS = 600.0


def complete(store, limit: int = BATCH) -> int:  # type: ignore[no-untyped-def]
    """Fetch up to `limit` wanted products that are due and push them; how many were pushed.
    The caller holds the store's lock."""
    key = sync_signals.wanted_key(store.name)
    due = [p.decode() for p in store.redis.zrangebyscore(key, "-inf", time.time(), 0, limit)]
    pushed = 0
    for product_id in due:
        if store.stop.is_set():
            break
        fetched = f"relay:sync:{store.name}:fetched:{product_id}"
        if not store.redis.set(fetched, "1", nx=True, ex=int(RETRY_SECONDS)):
            # Fetched whole a moment ago and wanted again (its list still not complete: a
            # variation of another product?): not again before RETRY_SECONDS.
            store.redis.zadd(key, {product_id: time.time() + RETRY_SECONDS}, xx=True)
            continue
        try:
            item = store.client.product(product_id)
        except StoreAuthError:
            raise
        except StoreError as exc:
            log.warning(
                "could not fetch a product for its held variation; trying again later",
                extra={
                    "platform": store.name,
                    "entity": f"product {product_id}",
                    "error": str(exc),
                },
            )
            store.redis.zadd(key, {product_id: time.time() + RETRY_SECONDS}, xx=True)
            continue
        pipe = store.redis.pipeline(transaction=True)
        if item is not None:
            event = store_event(store.name, item, ORIGIN_COMPLETION, "completion")
            push(pipe, Entry(event.to_dict(), None))
            pushed += 1
        else:  # gone from the store: nothing will complete it
            log.info(
                "a wanted product is no longer in the store",
                extra={"platform": store.name, "entity": f"product {product_id}"},
            )
        pipe.zrem(key, product_id)
        pipe.execute()
    if pushed:
        log.info(
            "fetched products whole for held variations",
            extra={"platform": store.name, "count": pushed},
        )
    return pushed
