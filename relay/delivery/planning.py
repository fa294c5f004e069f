"""From normalized records to what the API must receive: requests with their guards, and
product writes for the batching outbox.

Planning runs once per event (again on replay). Each request carries a `Guard`
(relay/delivery/entity_rules.py) that is checked just before every send attempt; this module decides
only what an event *could* send:
- orders, checkouts, back-in-stock requests: one request each, guarded by their rule;
- subscribers: a create and, by externalId, an update; the rules send the create the first
  time and the update when the content changed (`subscriber_requests`);
- products: through the variant memory (relay/delivery/variants.py) into the product outbox
  (relay/delivery/product_outbox.py); a variant alone is held until its product's list is complete;
- product deletes (a deleted or unpublished product): through the outbox too, so a delete
  and an upsert of one product keep their order; a deleted variation updates its parent's
  list instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from relay.delivery.commerce_api import ApiRequest
from relay.delivery.entity_rules import Guard, epoch, fingerprint
from relay.delivery.entity_state import EntityStore
from relay.delivery.product_outbox import ProductWrite, event_ref
from relay.delivery.variants import VariantMemory
from relay.events import RawEvent
from relay.mapping import Record
from relay.sync_signals import WantedProducts


@dataclass
class Plan:
    requests: list[ApiRequest] = field(default_factory=list)
    products: list[ProductWrite] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # what waits for more information, why


def effect_key(guard: Guard) -> str:
    """The identity of a request's effect, not of the event that asked for it: whichever
    event or attempt announces order 7 as placed names it `order:7:placed`.

    The Idempotency-Key header sent is this plus a digest of the body
    (`ApiRequest.idempotency_key`, relay/delivery/commerce_api.py). The only documented
    semantics of the header (POST /transactional/send) answer 409 to a key reused with a
    different body, and the same effect can carry another body (placed announced from a
    newer snapshot), so the key covers the body rather than being dropped: a resend after a
    crash is the same bytes under the same key, which an API honouring the header applies
    once (and the fault suite counts as `resent`, not as a duplicate)."""
    if guard.rule == "order":
        status = guard.status or "placed"
        if status == "refunded":
            return f"{guard.entity}:refunded:{guard.refund if guard.refund is not None else '?'}"
        return f"{guard.entity}:{status}"
    if guard.rule == "checkout":
        return f"{guard.entity}:{guard.fingerprint}"
    if guard.rule == "subscriber_create":
        return f"{guard.entity}:create"
    if guard.rule == "subscriber":
        # With the snapshot's time: a name changed back to an earlier value is a new change.
        when = "" if guard.modified is None else f":{guard.modified!r}"
        return f"{guard.entity}:update:{guard.fingerprint}{when}"
    return guard.entity


def request_for(record: Record) -> ApiRequest:
    """The guarded request that carries an order, checkout or back-in-stock record."""
    data, modified = record.data, epoch(record.modified_at)
    if record.kind == "order":
        guard = Guard(
            entity=f"order:{data['orderId']}",
            rule="order",
            modified=modified,
            status=data.get("status", "placed"),
            refund=data.get("refundAmountCents"),
            never_paid=bool(record.hints.get("neverPaid")),
        )
        return ApiRequest(
            "POST", "/api/v1/orders", data, guard.entity, guard.to_dict(), effect_key(guard)
        )
    if record.kind == "checkout":
        guard = Guard(
            entity=f"checkout:{data['checkoutId']}",
            rule="checkout",
            modified=modified,
            fingerprint=fingerprint(data),
        )
        return ApiRequest(
            "POST", "/api/v1/checkouts", data, guard.entity, guard.to_dict(), effect_key(guard)
        )
    if record.kind == "back_in_stock":
        who = [data["productId"], data.get("variantId") or "", data["customer"]["email"].lower()]
        guard = Guard(entity=f"once:{fingerprint(who)}", rule="once")
        return ApiRequest(
            "POST",
            "/api/v1/back-in-stock",
            data,
            f"back_in_stock:{data['productId']}",
            guard.to_dict(),
            effect_key(guard),
        )
    raise ValueError(f"{record.kind} records are not sent as single requests")


SUBSCRIBERS_PATH = "/api/v1/subscribers"


def subscriber_requests(record: Record) -> list[ApiRequest]:
    """The requests that may carry a subscriber snapshot, decided at send time by the rules:
    the create (`POST /subscribers`, sent once per subscriber) and, with an externalId, the
    update by it (`PATCH /subscribers/external`, sent when the content differs from what was
    sent last). After a create in the same round the update is skipped as unchanged.

    The create merges (`duplicateStrategy: merge`): someone already in Sequenzy (a guest
    buyer, a newsletter signup) keeps what Sequenzy holds, and gains what it lacked. Later
    changes (a new name or email) go by the update, which overwrites."""
    data, modified = record.data, epoch(record.modified_at)
    external_id = data.get("externalId")
    email = data["email"]
    entity = (
        f"subscriber:{external_id}"
        if external_id
        else f"subscriber:email:{fingerprint(email.lower())}"
    )
    # What the update sets: a name the platform no longer has is "" (cleared); the API
    # refuses null names.
    content = {
        "email": email,
        "firstName": data.get("firstName", ""),
        "lastName": data.get("lastName", ""),
    }
    digest = fingerprint(content)
    create = Guard(entity, "subscriber_create", modified=modified, fingerprint=digest)
    body = {**data, "duplicateStrategy": "merge"}
    out = [ApiRequest("POST", SUBSCRIBERS_PATH, body, entity, create.to_dict(), effect_key(create))]
    if external_id:
        update = Guard(entity, "subscriber", modified=modified, fingerprint=digest)
        path = f"{SUBSCRIBERS_PATH}/external?externalId={quote(external_id, safe='')}"
        out.append(ApiRequest("PATCH", path, content, entity, update.to_dict(), effect_key(update)))
    return out


def requests_for(record: Record) -> list[ApiRequest]:
    """The guarded requests of a record sent on its own (everything but products)."""
    if record.kind == "subscriber":
        return subscriber_requests(record)
    return [request_for(record)]


def product_write(
    product_id: str, payload: dict[str, Any] | None, modified: float | None, event: RawEvent
) -> ProductWrite:
    if payload is None:
        # A deletion (no time: product.deleted says only the id) or an unpublished snapshot
        # (its modified time: an older snapshot must not undo it, nor it a newer one).
        guard = Guard(entity=f"product:{product_id}", rule="delete", modified=modified)
        return ProductWrite(product_id, "delete", None, guard.to_dict(), event_ref(event), modified)
    guard = Guard(
        entity=f"product:{product_id}",
        rule="product",
        modified=modified,
        fingerprint=fingerprint(payload),
    )
    return ProductWrite(product_id, "upsert", payload, guard.to_dict(), event_ref(event), modified)


class Planner:
    def __init__(
        self, store: EntityStore, variants: VariantMemory, wanted: WantedProducts | None = None
    ):
        self.store = store
        self.variants = variants
        # Where a held variation asks for its product's whole list (from the store's API,
        # when the platform has one configured: relay/sync/completion.py).
        self.wanted = wanted

    def plan(self, event: RawEvent, records: Sequence[Record]) -> Plan:
        plan = Plan()
        held_for: set[str] = set()  # products with a variation held for want of its list
        for record in records:
            if record.kind == "variant":
                held_for.add(record.data["productId"])
            if record.kind in ("order", "checkout", "back_in_stock", "subscriber"):
                plan.requests.extend(requests_for(record))
            elif record.kind == "product":
                self._product(plan, record, event)
            elif record.kind == "variant":
                self._variant(plan, record, event)
            elif record.kind == "product_delete":
                self._delete(plan, record.data["productId"], epoch(record.modified_at), event)
        if held_for and self.wanted is not None:
            self._want(event.platform, held_for)
        return plan

    def _want(self, platform: str, product_ids: set[str]) -> None:
        """After the whole event (a synced product carries its variations as records of
        their own, the product first): a product whose variant list is still not complete,
        or that the relay does not know at all, is wanted from the store."""
        wanted = []
        for product_id in sorted(product_ids):
            composed = self.variants.compose(product_id)
            if composed is None:
                if not self.variants.has_variants(product_id):  # unknown, not withdrawn
                    wanted.append(product_id)
            elif not composed.complete:
                wanted.append(product_id)
        self.wanted.want(platform, wanted)  # type: ignore[union-attr]

    def _product(self, plan: Plan, record: Record, event: RawEvent) -> None:
        data, modified = record.data, epoch(record.modified_at)
        product_id = data["productId"]
        variant_ids = record.hints.get("variantIds")
        with self.store.lock(f"product:{product_id}"):
            if variant_ids is None:
                if self.variants.has_variants(product_id):
                    # It was a variable product: clear the variants the API still holds.
                    self.variants.forget_product(product_id)
                    data = {**data, "variants": []}
                plan.products.append(product_write(product_id, data, modified, event))
                return
            if not self.variants.remember_product(product_id, data, modified, variant_ids):
                plan.held.append(f"product {product_id}: an update newer than this one is known")
                return
            composed = self.variants.compose(product_id)
            assert composed is not None  # just remembered
            plan.products.append(
                product_write(product_id, composed.payload, composed.modified, event)
            )

    def _variant(self, plan: Plan, record: Record, event: RawEvent) -> None:
        product_id, variant = record.data["productId"], record.data["variant"]
        with self.store.lock(f"product:{product_id}"):
            fresh = self.variants.remember_variant(
                product_id, variant, epoch(record.modified_at), bool(record.hints.get("disabled"))
            )
            composed = self.variants.compose(product_id) if fresh else None
            if composed is not None and composed.complete:
                plan.products.append(
                    product_write(product_id, composed.payload, composed.modified, event)
                )
                return
            if not fresh:
                why = "a newer update of it is known"
            elif composed is None:  # unknown yet, or deleted or unpublished
                why = "held until its product is known and published"
            else:  # sending one variant would replace the product's whole list at the API
                why = "held until the product's variant list is known in full"
            plan.held.append(f"variant {variant['variantId']} of product {product_id}: {why}")

    def _delete(self, plan: Plan, product_id: str, modified: float | None, event: RawEvent) -> None:
        parent = self.variants.parent_of(product_id)
        if parent is not None:  # a deleted variation: its parent's list shrinks
            with self.store.lock(f"product:{parent}"):
                self.variants.forget_variant(parent, product_id)
                composed = self.variants.compose(parent)
                if composed is not None and composed.complete:
                    plan.products.append(
                        product_write(parent, composed.payload, composed.modified, event)
                    )
            return
        with self.store.lock(f"product:{product_id}"):
            # Its variants are kept: republished (or restored), it comes back whole.
            self.variants.withdraw(product_id, modified)
            plan.products.append(product_write(product_id, None, modified, event))
