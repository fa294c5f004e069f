"""The inbox between ingest and the workers: chunks, leftovers of killed drains, wake-ups."""

from __future__ import annotations

import json

from relay.delivery.worker import recover_inbox
from relay.event_queue import EventQueue, dedup_mark_key, make_queue
from relay.events import RawEvent, new_event_id
from relay.inbox import INBOX, WAKE, Inbox
from relay.intake.acceptor import Acceptor
from tests.conftest import stored_events


def accept(redis, n: int) -> list[RawEvent]:
    events = [
        RawEvent(
            new_event_id(), "woocommerce", "order.created", float(i), json.dumps({"id": i}).encode()
        )
        for i in range(n)
    ]
    queue = Acceptor(EventQueue(redis))
    for event in events:
        assert queue.accept(event, event.id)
    return events


def drain_jobs(redis) -> list[str]:
    return [j for j in make_queue(redis).get_job_ids() if j.startswith("drain-")]


def test_one_drain_job_for_a_burst_and_oldest_first(redis):
    events = accept(redis, 120)
    assert len(drain_jobs(redis)) == 1  # the wake flag: not one job per webhook
    inbox = Inbox(redis)
    first = inbox.take("d1")
    assert [e.event["id"] for e in first] == [e.id for e in events[:50]]
    assert inbox.depth() == 70


def test_a_killed_drain_finds_its_leftovers(redis):
    events = accept(redis, 10)
    inbox = Inbox(redis)
    taken = inbox.take("d1", 4)
    # The worker dies here. The re-run of the same job (same drain id) sees them first.
    assert [e.event["id"] for e in inbox.inflight("d1")] == [e.event["id"] for e in taken]
    assert [e.event["id"] for e in taken] == [e.id for e in events[:4]]


def test_leftovers_of_a_failed_drain_go_back_first_in_line(redis):
    events = accept(redis, 6)
    inbox = Inbox(redis)
    inbox.take("gone", 3)  # no RQ job "drain-gone" exists: it failed for good
    redis.delete(WAKE)
    for job_id in drain_jobs(redis):
        make_queue(redis).remove(job_id)
    assert recover_inbox(redis) == 3
    assert [e.id for e in stored_events(redis)] == [e.id for e in events]  # order kept
    assert len(drain_jobs(redis)) == 1  # and a drain job is on its way


def test_a_wake_flag_that_expired_with_its_job_is_renewed(redis):
    accept(redis, 2)
    for job_id in drain_jobs(redis):
        make_queue(redis).remove(job_id)
    redis.delete(WAKE)  # as if it expired
    recover_inbox(redis)
    assert len(drain_jobs(redis)) == 1
    assert redis.llen(INBOX) == 2


def test_webhooks_stored_together_keep_their_own_answers(redis):
    """A group commit's batch: one pipeline, one answer per webhook, and a Redis that
    restarted and forgot the accept script (NOSCRIPT) loses none of them."""
    queue = EventQueue(redis)
    acceptor = Acceptor(queue)
    redis.script_flush()
    one, two, twin = (
        RawEvent(new_event_id(), "woocommerce", "order.created", 1.0, b'{"id": %d}' % n)
        for n in (1, 2, 1)
    )
    results = acceptor.store_batch(
        [
            acceptor.accept_write(one, "key-1"),
            acceptor.accept_write(two, "key-2"),
            acceptor.accept_write(twin, "key-1"),  # the same delivery twice in one batch
        ]
    )
    assert [first for first, _ in results] == [1, 1, 0]
    assert [wake for _, wake in results] == [1, 0, 0]  # one drain job for the batch
    # Both twins are stored; the mark names the first, and the worker drops the other.
    assert [e.id for e in stored_events(redis)] == [one.id, two.id, twin.id]
    assert queue.mark_owners([dedup_mark_key("woocommerce", "key-1")]) == [one.id]
