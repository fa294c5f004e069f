"""How an event's handling ends: the dead letter keeps what can be stored, never loses it."""

from __future__ import annotations

from relay.delivery.deadletters import DeadLetters
from relay.delivery.endings import KEPT_DEPTH, Endings
from relay.events import RawEvent, new_event_id
from relay.mapping import Record


def _nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"meta": [value]}
    return value


class RecordingLetters(DeadLetters):
    """The real dead letter store, noting every letter it is asked to add."""

    def __init__(self, redis):
        super().__init__(redis)
        self.asked: list = []

    def add(self, letter) -> None:
        self.asked.append(letter)
        super().add(letter)


def test_records_nested_too_deep_are_dropped_before_they_are_encoded(redis):
    """Encoding them (dataclasses.asdict) would overflow the stack; caught, that worked,
    but how deep the overflow went depended on the stack already in use, and CI saw its
    clean-up fail as an unraisable exception."""
    letters = RecordingLetters(redis)
    event = RawEvent(new_event_id(), "woocommerce", "order.created", 0.0, b"{}", "")
    deep = Record("order", {"orderId": "3", "properties": _nested(2_000)})
    Endings(letters).dead(event, "invalid_record", "records failed validation", records=[deep])

    [asked] = letters.asked  # one add, without the records: no overflow to recover from
    assert asked.records is None
    assert "records and requests not kept: nested too deeply" in asked.error
    [kept] = DeadLetters(redis).list()
    assert kept.event["id"] == event.id  # the raw event is kept, for a replay


def test_records_as_deep_as_valid_ones_are_kept(redis):
    letters = DeadLetters(redis)
    event = RawEvent(new_event_id(), "woocommerce", "order.created", 0.0, b"{}", "")
    shallow = Record("order", {"orderId": "3", "properties": _nested(KEPT_DEPTH // 4)})
    Endings(letters).dead(event, "invalid_record", "records failed validation", records=[shallow])
    [kept] = letters.list()
    assert kept.records == [shallow.to_dict()]
