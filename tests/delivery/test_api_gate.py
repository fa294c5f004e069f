"""The rate-limit gate (relay/delivery/api_gate.py): a shared pause, AIMD concurrency."""

from __future__ import annotations

import random

from relay.delivery.api_gate import PAUSED_UNTIL, ApiGate, is_rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_retry_after_pauses_for_what_the_api_asked(redis):
    clock = Clock()
    gate = ApiGate(redis, 32, clock=clock)
    assert gate.refused(2.0) == 2.0
    assert gate.paused_for() == 2.0
    clock.now += 1.5
    assert 0.49 < gate.paused_for() < 0.51
    clock.now += 0.6
    assert gate.paused_for() == 0.0


def test_the_pause_is_shared_with_every_worker(redis):
    clock = Clock()
    one, other = ApiGate(redis, 8, clock=clock), ApiGate(redis, 8, clock=clock)
    one.refused(3.0)
    assert other.paused_for() == 0.0  # not yet learnt
    other.refresh()
    assert other.paused_for() == 3.0
    assert 0 < redis.pttl(PAUSED_UNTIL) <= 3000  # gone with the pause


def test_a_shorter_pause_never_shortens_a_longer_one(redis):
    clock = Clock()
    gate = ApiGate(redis, 8, clock=clock)
    gate.refused(10.0)
    gate.refused(1.0)
    assert gate.paused_for() == 10.0
    other = ApiGate(redis, 8, clock=clock)
    other.refresh()
    assert other.paused_for() == 10.0


def test_without_retry_after_the_backoff_grows_with_jitter(redis):
    gate = ApiGate(redis, 8, clock=Clock(), rng=random.Random(1))
    pauses = [gate.refused(None) for _ in range(7)]
    for n, pause in enumerate(pauses):
        nominal = min(2.0**n, 30.0)
        assert nominal * 0.8 <= pause <= nominal * 1.2


def test_aimd_halves_on_a_refusal_and_adds_one_per_success(redis):
    gate = ApiGate(redis, 32, clock=Clock())
    assert gate.limit == 32
    gate.refused(0.0)
    gate.refused(0.0)
    assert gate.limit == 8
    for _ in range(5):
        gate.succeeded()
    assert gate.limit == 13
    for _ in range(100):
        gate.succeeded()
    assert gate.limit == 32  # never above the setting
    for _ in range(10):
        gate.refused(0.0)
    assert gate.limit == 1  # never below one


def test_what_counts_as_a_rate_limit():
    assert is_rate_limit(429, None) and is_rate_limit(429, 2.0)
    assert is_rate_limit(503, 2.0)  # unavailable, and says when to come back
    assert not is_rate_limit(503, None)  # an outage: the event's own retry schedule
    assert not is_rate_limit(500, 2.0) and not is_rate_limit(None, None)
