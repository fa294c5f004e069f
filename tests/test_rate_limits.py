"""relay/rate_limits.py against a real Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from relay.rate_limits import RateLimit


def test_counts_per_client_and_refuses_past_the_limit(redis):
    limit = RateLimit(redis, "t", limit=3, window_seconds=60)
    verdicts = [limit.hit("10.0.0.1") for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert verdicts[-1].count == 5
    assert 1 <= verdicts[-1].retry_after <= 60
    assert limit.hit("10.0.0.2").allowed  # another client has its own window


def test_concurrent_attempts_cannot_exceed_the_limit(redis):
    limit = RateLimit(redis, "t", limit=20, window_seconds=60)
    with ThreadPoolExecutor(16) as pool:
        verdicts = list(pool.map(lambda _: limit.hit("10.0.0.1"), range(200)))
    assert sum(v.allowed for v in verdicts) == 20


def test_release_gives_the_slot_back(redis):
    limit = RateLimit(redis, "t", limit=1, window_seconds=60)
    assert limit.hit("a").allowed
    limit.release("a")
    assert limit.hit("a").allowed
    assert not limit.hit("a").allowed


def test_the_window_always_expires(redis):
    limit = RateLimit(redis, "t", limit=1, window_seconds=60)
    limit.hit("10.0.0.1")
    assert 0 < redis.ttl(limit.key("10.0.0.1")) <= 60
    assert "10.0.0.1" not in limit.key("10.0.0.1")  # the address itself is not stored
