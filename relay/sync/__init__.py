"""Asking the store: backfill, reconcile, webhook health and variant completion.

The relay's push half hears what a store sends. This half asks the store's own API, for
the platforms whose mapper declares one (relay/store_api.py `StoreSpec`; WooCommerce's is
mappers/woocommerce/store.py) and whose store settings are set:

    relay sync P        backfill (relay/sync/backfill.py): products with their variants,
                        customers, guest buyers, orders when asked; resumable, with progress
    relay reconcile     what changed since the last run (relay/sync/reconcile.py), also every
                        RELAY_RECONCILE_INTERVAL from the workers (relay/sync/service.py)
    relay connect P     create or repair the store's webhooks (relay/sync/webhooks.py)
    completion          a variation held for want of its product's list: the product is
                        fetched whole (relay/sync/completion.py)

Everything found goes through the webhooks' pipeline: each record becomes a RawEvent of its
platform, with the webhook's topic and body and an `x-relay-origin` header, pushed into the
inbox (relay/inbox.py); the workers map, check and deliver it with the entity rules,
retries and dead letters of any webhook. The rules decide what is newer, so a polled
snapshot never overwrites a newer webhook and an unchanged record is not sent again.

    relay/sync/session.py      the paced HTTP session every store client gets
    relay/sync/lock.py         one process talks to a store at a time
    relay/sync/checkpoints.py  runs and phases in Redis: cursors, counts, status
    relay/sync/runner.py       fetch a page, push its events with the cursor, backpressure
    relay/sync/progress.py     rate and ETA, the command line's progress lines
    relay/sync/status.py       what the admin page and /metrics read

Delivery does no store I/O and does not import this package: it leaves the products it
wants and the counts of what reconcile found in Redis (relay/sync_signals.py).
"""
