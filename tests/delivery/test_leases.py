"""Worker leases (relay/delivery/leases.py): alive while renewed, dead once gone."""

from __future__ import annotations

import time

from relay.delivery.leases import Lease, alive, lease_key


def test_a_lease_is_alive_while_renewed_and_gone_after_a_clean_stop(redis):
    lease = Lease(redis, "host:1:1", ttl_seconds=0.5, renew_every=0.1).start()
    try:
        time.sleep(1.0)  # longer than its TTL: only the renewals keep it
        assert alive(redis, "host:1:1")
    finally:
        lease.stop()
    assert not alive(redis, "host:1:1")


def test_a_lease_nobody_renews_expires(redis):
    redis.set(lease_key("host:2:1"), "1", px=100)
    assert alive(redis, "host:2:1")
    time.sleep(0.2)
    assert not alive(redis, "host:2:1")
