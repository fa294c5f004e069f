"""The storefront's back-in-stock requests (relay/storefront/): one of the relay's own event
sources, not a platform. The storefront endpoint stores each shopper's request as a small
JSON body in this package's shape; the worker maps it here into the Commerce API's
BackInStock, as it maps a platform's webhook (so a dead letter replays with today's code)."""

from __future__ import annotations

from mappers.storefront.mapper import NAME, TOPIC, map_event
from relay.mapping import Source

SOURCE = Source(name=NAME, title="Storefront", map_event=map_event, topics=frozenset({TOPIC}))
