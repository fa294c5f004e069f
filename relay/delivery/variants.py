"""Variant memory: the relay sends a product's `variants` only when it knows all of them.

Sending `variants` replaces the product's whole list at the API, so one variation's update
sent alone would delete its siblings. WooCommerce's variable product webhook lists only the
variation ids; each variation arrives as its own webhook. The relay keeps both:

    relay:product:<id>      base (the product without variants), modified, variant_ids
    relay:variants:<id>     variant id -> {"variant": ..., "modified": ..., "disabled": ...}
    relay:variant-of:<vid>  the parent product id of a variant

and composes the full product when every listed variant is known. Callers hold the
product's lock (`product:<id>`) around remember + compose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis import Redis

TTL_SECONDS = 400 * 86400


@dataclass(frozen=True)
class Composed:
    payload: dict[str, Any]
    modified: float | None
    complete: bool  # the payload carries the full variant list (or the product has none)


def _product_key(product_id: str) -> str:
    return f"relay:product:{product_id}"


def _variants_key(product_id: str) -> str:
    return f"relay:variants:{product_id}"


def _parent_key(variant_id: str) -> str:
    return f"relay:variant-of:{variant_id}"


def _newer(modified: float | None, stored: Any) -> bool:
    return modified is None or stored in (None, "") or modified >= float(stored)


class VariantMemory:
    def __init__(self, redis: Redis):
        self.redis = redis

    def _touch(self, pipe: Any, *keys: str) -> None:
        for key in keys:
            pipe.expire(key, TTL_SECONDS)

    def has_variants(self, product_id: str) -> bool:
        return bool(self.redis.hexists(_product_key(product_id), "variant_ids"))

    def remember_product(
        self, product_id: str, base: dict[str, Any], modified: float | None, variant_ids: list[str]
    ) -> bool:
        """Store a variable product's own fields and its variant ids; False if older."""
        stored = self.redis.hget(_product_key(product_id), "modified")
        if not _newer(modified, stored and stored.decode()):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            _product_key(product_id),
            mapping={
                "base": json.dumps(base),
                "modified": "" if modified is None else repr(modified),
                "variant_ids": json.dumps(variant_ids),
            },
        )
        # Variants no longer listed were deleted in the store: forget them.
        known = [v.decode() for v in self.redis.hkeys(_variants_key(product_id))]
        gone = [v for v in known if v not in variant_ids]
        if gone:
            pipe.hdel(_variants_key(product_id), *gone)
            pipe.delete(*[_parent_key(v) for v in gone])
        self._touch(pipe, _product_key(product_id))
        pipe.execute()
        return True

    def remember_variant(
        self,
        product_id: str,
        variant: dict[str, Any],
        modified: float | None,
        disabled: bool,
    ) -> bool:
        """Store one variant; False if an older snapshot than the one kept."""
        variant_id = variant["variantId"]
        raw = self.redis.hget(_variants_key(product_id), variant_id)
        if raw is not None and not _newer(modified, json.loads(raw).get("modified")):
            return False
        entry = {"variant": variant, "modified": modified, "disabled": disabled}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(_variants_key(product_id), variant_id, json.dumps(entry))
        pipe.set(_parent_key(variant_id), product_id, ex=TTL_SECONDS)
        self._touch(pipe, _variants_key(product_id))
        pipe.execute()
        return True

    def variant_ids(self, product_id: str) -> list[str] | None:
        """The variant ids of a variable product as its store last listed them; None when
        the relay knows no such product (read-only, one command: the storefront asks it)."""
        raw = self.redis.hget(_product_key(product_id), "variant_ids")
        return None if raw is None else [str(v) for v in json.loads(raw)]

    def parent_of(self, variant_id: str) -> str | None:
        parent = self.redis.get(_parent_key(variant_id))
        return parent.decode() if parent else None

    def forget_variant(self, product_id: str, variant_id: str) -> None:
        """A deleted variation: drop it from the memory and from the product's list."""
        raw_ids = self.redis.hget(_product_key(product_id), "variant_ids")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(_variants_key(product_id), variant_id)
        pipe.delete(_parent_key(variant_id))
        if raw_ids is not None:
            ids = [v for v in json.loads(raw_ids) if v != variant_id]
            pipe.hset(_product_key(product_id), "variant_ids", json.dumps(ids))
        pipe.execute()

    def withdraw(self, product_id: str, modified: float | None) -> None:
        """The product left the catalog (deleted, or no longer published): forget its own
        fields, so that no variation update recomposes it, but keep its variants, so that a
        newer snapshot that publishes it again comes back with its whole list. `modified`
        (an unpublished snapshot's time) makes older snapshots of the product stale."""
        key = _product_key(product_id)
        stored = self.redis.hget(key, "modified")
        if stored is None and not self.redis.exists(key):
            return  # a product without variants: nothing remembered
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(key, "base")
        if modified is not None and _newer(modified, stored and stored.decode()):
            pipe.hset(key, "modified", repr(modified))
        self._touch(pipe, key)
        pipe.execute()

    def forget_product(self, product_id: str) -> None:
        variant_ids = [v.decode() for v in self.redis.hkeys(_variants_key(product_id))]
        keys = [_product_key(product_id), _variants_key(product_id)]
        keys += [_parent_key(v) for v in variant_ids]
        self.redis.delete(*keys)

    def compose(self, product_id: str) -> Composed | None:
        """The product with its full variant list when all are known, else without
        `variants` (the API keeps what it has). None when the product itself is unknown."""
        stored = self.redis.hgetall(_product_key(product_id))
        if b"base" not in stored:
            return None
        base = json.loads(stored[b"base"])
        modified_raw = stored.get(b"modified", b"").decode()
        modified = float(modified_raw) if modified_raw else None
        variant_ids = json.loads(stored.get(b"variant_ids", b"[]"))
        entries = {
            k.decode(): json.loads(v)
            for k, v in self.redis.hgetall(_variants_key(product_id)).items()
        }
        if any(v not in entries for v in variant_ids):
            return Composed(base, modified, complete=False)
        variants = [entries[v]["variant"] for v in variant_ids if not entries[v]["disabled"]]
        times = [m for m in [modified, *(entries[v]["modified"] for v in variant_ids)] if m]
        return Composed(
            {**base, "variants": variants}, max(times) if times else None, complete=True
        )
