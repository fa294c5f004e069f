"""The inbox between ingest and the workers: taking, waiting, finishing, giving back, and
taking over what dead workers held."""

from __future__ import annotations

import json

from relay.delivery.worker import recover_inbox
from relay.event_queue import EventQueue, dedup_mark_key, make_queue
from relay.events import RawEvent, new_event_id
from relay.inbox import DRAINS, OWNERS, SUSPECT_AFTER, Inbox, tries_key
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


def ids(entries) -> list[str]:
    return [e.event["id"] for e in entries]


def test_a_worker_takes_the_oldest_first_into_its_own_list(redis):
    events = accept(redis, 120)
    assert make_queue(redis).get_job_ids() == []  # no job per webhook: workers take the inbox
    inbox = Inbox(redis)
    first = inbox.take("w1")
    assert ids(first) == [e.id for e in events[:50]]
    assert inbox.depth() == 70 and inbox.owners() == ["w1"]
    assert ids(inbox.inflight("w1")) == ids(first)
    assert inbox.waiting() == 120  # what a worker holds still counts as waiting


def test_an_idle_worker_waits_for_the_next_event(redis):
    inbox = Inbox(redis)
    assert inbox.wait("w1", 0.05) is None
    [event] = accept(redis, 1)
    entry = inbox.wait("w1", 1.0)
    assert entry is not None and entry.event["id"] == event.id
    assert ids(inbox.inflight("w1")) == [event.id] and inbox.owners() == ["w1"]


def test_a_finished_event_leaves_the_list_with_its_tries(redis):
    accept(redis, 2)
    inbox = Inbox(redis)
    one, two = inbox.take("w1")
    redis.set(tries_key(one.event_id), 1)
    pipe = redis.pipeline()
    inbox.finish(pipe, "w1", one)
    pipe.execute()
    assert ids(inbox.inflight("w1")) == [two.event["id"]]
    assert redis.get(tries_key(one.event_id)) is None


def test_a_clean_stop_gives_back_in_order_without_a_try(redis):
    events = accept(redis, 6)
    inbox = Inbox(redis)
    inbox.take("w1", 3)
    assert inbox.give_back("w1") == 3
    assert [e.id for e in stored_events(redis)] == [e.id for e in events]  # order kept
    assert redis.keys("relay:inbox:tries:*") == [] and inbox.owners() == []


def test_a_dead_workers_events_count_a_try_and_twice_makes_a_suspect(redis):
    events = accept(redis, 4)
    inbox = Inbox(redis)
    inbox.take("dead-1", 2)
    assert inbox.take_over("dead-1") == 2
    # Back at the front, oldest first, one try each.
    assert [e.id for e in stored_events(redis)] == [e.id for e in events]
    assert [inbox.tries(e) for e in inbox.take("dead-2", 2)] == [1, 1]
    assert inbox.take_over("dead-2") == 2  # a second worker died holding them
    assert inbox.suspects() == 2 and inbox.depth() == 2
    suspect = inbox.take_suspect("w3")
    assert suspect is not None and suspect.event["id"] == events[0].id
    assert inbox.tries(suspect) == SUSPECT_AFTER
    assert inbox.owners() == ["w3"]


def test_an_older_relays_drain_list_goes_back_first_in_line(redis):
    events = accept(redis, 6)
    inbox = Inbox(redis)
    inbox.take("gone", 3)  # as an older relay's drain job "drain-gone" left it
    redis.srem(OWNERS, "gone")
    redis.sadd(DRAINS, "gone")
    assert recover_inbox(redis) == 3  # no RQ job "drain-gone" exists: it failed for good
    assert [e.id for e in stored_events(redis)] == [e.id for e in events]  # order kept
    assert inbox.in_flight() == 0


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
    assert results == [1, 1, 0]
    # Both twins are stored; the mark names the first, and the worker drops the other.
    assert [e.id for e in stored_events(redis)] == [one.id, two.id, twin.id]
    assert queue.mark_owners([dedup_mark_key("woocommerce", "key-1")]) == [one.id]
