"""What the relay knows of a product, to catch a widget asking for a variant that is not
one: the worker's variant memory (relay/delivery/variants.py), read-only, one command.

Only a variable product's list of variant ids is known for sure (its store listed them in
its last product webhook). A product the relay never saw, or a simple one, is passed on:
the Commerce API knows its catalog better than the relay's memory does.
"""

from __future__ import annotations

from redis import Redis

from relay.delivery.variants import VariantMemory


class Catalog:
    def __init__(self, redis: Redis):
        self._variants = VariantMemory(redis)

    def variant_problem(self, product_id: str, variant_id: str | None) -> str | None:
        """Why `variant_id` cannot be a variant of `product_id`, or None. Raises
        redis.RedisError when Redis does not answer."""
        if variant_id is None:
            return None
        known = self._variants.variant_ids(product_id)
        if known is None or variant_id in known:
            return None
        return f"product {product_id} has no variant {variant_id}"
