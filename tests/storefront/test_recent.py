"""The last few requests for the admin page (relay/storefront/recent.py): capped, newest
first, emails masked."""

from __future__ import annotations

from relay.storefront.recent import KEY, RecentRequests, masked


def test_emails_are_masked_whatever_they_look_like():
    assert masked("ann@example.com") == "a***@example.com"
    assert masked(" Ann.Lee+shop@mail.example.org") == "A***@mail.example.org"
    assert masked("ann@localhost") == "a***@localhost"
    for not_an_address in ("ann", "@example.com", "ann@"):
        assert masked(not_an_address) == "***"
    assert masked(None) == masked("") == ""
    assert len(masked("a@" + "b" * 5000)) <= 120


def test_the_list_keeps_the_newest_few(redis):
    recent = RecentRequests(redis, keep=3)
    for i in range(5):
        recent.add("accepted", f"s{i}@example.com", str(i), None, at=1000.0 + i)
    latest = recent.latest()
    assert [(r.product_id, r.email, r.at) for r in latest] == [
        ("4", "s***@example.com", 1004.0),
        ("3", "s***@example.com", 1003.0),
        ("2", "s***@example.com", 1002.0),
    ]
    assert redis.llen(KEY) == 3
    assert b"s4@example.com" not in b"".join(redis.lrange(KEY, 0, -1))
