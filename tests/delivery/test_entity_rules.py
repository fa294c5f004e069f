"""The entity rules as pure decisions (no Redis): what goes, what is dropped, and why."""

from __future__ import annotations

from relay.delivery.entity_rules import (
    Guard,
    attempting,
    decide,
    delivered,
    epoch,
    fingerprint,
    skipped,
)


def order(status: str, **kw) -> Guard:
    return Guard(entity="order:1", rule="order", status=status, **kw)


def after(*guards: Guard) -> dict[str, str]:
    """The state after delivering these, in order."""
    state: dict[str, str] = {}
    for guard in guards:
        state = {**state, **delivered(guard, state)}
    return state


def test_placed_exactly_once():
    assert decide(order("placed"), {}).send
    assert not decide(order("placed"), after(order("placed"))).send


def test_first_sighting_of_a_later_status_announces_placed_first():
    for status in ("fulfilled", "cancelled"):
        decision = decide(order(status), {})
        assert decision.send and decision.announce_first
    refund = decide(order("refunded", refund=500), {})
    assert refund.send and refund.announce_first
    assert not decide(order("fulfilled"), after(order("placed"))).announce_first


def test_never_backwards():
    fulfilled = after(order("placed"), order("fulfilled"))
    assert not decide(order("fulfilled"), fulfilled).send
    cancelled = after(order("placed"), order("cancelled"))
    assert not decide(order("fulfilled"), cancelled).send
    assert decide(order("cancelled"), fulfilled).send  # forward: fulfilled -> cancelled


def test_refunds_only_when_the_cumulative_amount_grows():
    state = after(order("placed"), order("refunded", refund=1620))
    assert not decide(order("refunded", refund=1620), state).send
    assert not decide(order("refunded", refund=1000), state).send  # a refund was deleted
    assert decide(order("refunded", refund=2000), state).send
    # Refunds do not move the lifecycle: a later fulfilment still goes.
    assert decide(order("fulfilled"), state).send


def test_refund_without_an_amount_is_announced_once():
    assert decide(order("refunded"), after(order("placed"))).send
    state = after(order("placed"), order("refunded"))
    assert not decide(order("refunded"), state).send


def test_unpaid_cancellation_of_an_unannounced_order_is_dropped():
    assert not decide(order("cancelled", never_paid=True), {}).send
    # Announced (on-hold, awaiting a bank transfer), then cancelled unpaid: it goes.
    assert decide(order("cancelled", never_paid=True), after(order("placed"))).send


def test_last_write_wins_by_modified_time():
    t1, t2 = epoch("2024-03-01T10:00:00Z"), epoch("2024-03-01T11:00:00Z")
    product = Guard("product:1", "product", modified=t2, fingerprint="a")
    state = after(product)
    assert not decide(Guard("product:1", "product", modified=t1, fingerprint="b"), state).send
    assert decide(Guard("product:1", "product", modified=t2, fingerprint="b"), state).send


def test_unchanged_product_is_not_sent_but_its_time_is_kept():
    first = Guard("product:1", "product", modified=100.0, fingerprint="same")
    state = after(first)
    again = Guard("product:1", "product", modified=200.0, fingerprint="same")
    decision = decide(again, state)
    assert not decision.send
    assert skipped(again, decision, state) == {"modified": "200.0"}


def test_checkout_once_per_content_and_never_after_its_order():
    checkout = Guard("checkout:7", "checkout", fingerprint=fingerprint({"items": [1]}))
    assert checkout.related == "order:7"
    state = after(checkout)
    assert not decide(checkout, state).send
    changed = Guard("checkout:7", "checkout", fingerprint=fingerprint({"items": [1, 2]}))
    assert decide(changed, state).send
    assert not decide(changed, state, related=after(order("placed"))).send


def test_once_rule():
    once = Guard("once:x", "once")
    assert decide(once, {}).send
    assert not decide(once, after(once)).send


def test_delete_always_goes_and_forgets_the_content():
    upsert = Guard("product:1", "product", fingerprint="a")
    state = after(upsert, Guard("product:1", "delete"))
    assert decide(upsert, state).send  # a restored product is sent again


def test_an_unpublished_products_delete_follows_last_write_wins():
    published = Guard("product:1", "product", modified=200.0, fingerprint="a")
    state = after(published)
    assert not decide(Guard("product:1", "delete", modified=100.0), state).send  # older
    unpublished = Guard("product:1", "delete", modified=300.0)
    assert decide(unpublished, state).send
    gone = after(published, unpublished)
    # Published snapshots: one from before the withdrawal stays out, a newer one comes back.
    assert not decide(Guard("product:1", "product", modified=250.0, fingerprint="a"), gone).send
    assert decide(Guard("product:1", "product", modified=400.0, fingerprint="a"), gone).send
    # Unpublished again later while already gone: nothing to send, but it is the newest
    # state, so a published snapshot from between the two stays out.
    again = Guard("product:1", "delete", modified=500.0)
    decision = decide(again, gone)
    assert not decision.send
    gone_later = {**gone, **skipped(again, decision, gone)}
    assert not decide(
        Guard("product:1", "product", modified=450.0, fingerprint="a"), gone_later
    ).send


def test_a_subscriber_is_created_once_then_updated_when_its_content_changes():
    create = Guard("subscriber:7", "subscriber_create", modified=100.0, fingerprint="a")
    update = Guard("subscriber:7", "subscriber", modified=100.0, fingerprint="a")
    assert decide(create, {}).send
    created = after(create)
    assert not decide(update, created).send  # the create carried this content
    later_create = Guard("subscriber:7", "subscriber_create", modified=200.0, fingerprint="b")
    assert not decide(later_create, created).send
    changed = Guard("subscriber:7", "subscriber", modified=200.0, fingerprint="b")
    assert decide(changed, created).send
    state = after(create, changed)
    older = Guard("subscriber:7", "subscriber", modified=150.0, fingerprint="c")
    assert not decide(older, state).send
    again = Guard("subscriber:7", "subscriber", modified=300.0, fingerprint="b")
    decision = decide(again, state)
    assert not decision.send
    assert skipped(again, decision, state) == {"modified": "300.0"}


def test_guard_round_trip_and_epoch():
    guard = order("refunded", refund=5, modified=1.5, never_paid=True)
    assert Guard.from_dict(guard.to_dict()) == guard
    assert epoch("2024-03-01T10:00:00Z") == epoch("2024-03-01T11:00:00+01:00")
    assert epoch("yesterday") is None and epoch(None) is None


def test_an_attempt_counts_for_last_write_wins_and_stops_the_checkout():
    # The API may have applied a request whose answer never came (a timeout).
    newer = Guard("product:1", "product", modified=200.0, fingerprint="v2")
    state = attempting(newer, {})
    assert not decide(Guard("product:1", "product", modified=100.0, fingerprint="v1"), state).send
    assert decide(newer, state).send  # the attempt's own retry still goes
    placing = attempting(order("placed"), {})
    checkout = Guard("checkout:1", "checkout", fingerprint="c")
    assert not decide(checkout, {}, related=placing).send
    assert decide(order("placed"), placing).send  # not known to be delivered: send again


def test_a_checkout_decides_under_its_orders_lock():
    assert Guard("checkout:9", "checkout").lock == "order:9"
    assert Guard("order:9", "order").lock == "order:9"
