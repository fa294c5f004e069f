"""The fault-injection suite (bench/faults.py) at a size CI can afford: every scenario must
end with nothing lost, doubled or out of order. `python -m bench.faults` runs it full size."""

from __future__ import annotations

import pytest

from bench import faults

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
# A crash can only resend what was in flight: at most RELAY_DELIVERY_CONCURRENCY (16 by
# default) per worker killed, or per worker when Redis restarts (two workers run).
IN_FLIGHT = 16
RESENT_AT_MOST = {
    "worker-sigkill": 4 * IN_FLIGHT,  # four workers killed
    "worker-sigkill-slow-api": 4 * IN_FLIGHT,
    "redis-restart": 2 * IN_FLIGHT,
}


@pytest.mark.parametrize("scenario", list(faults.SCENARIOS))
def test_scenario(scenario, capsys):
    result = faults.run_scenario(scenario, orders=200, products=60, checkouts=40, seed=11)
    with capsys.disabled():
        print(f"\n{scenario}: {result.__dict__ | {'problems': result.problems[:5]}}")
    # "late (API)": the fake API applied a request after a newer one (api-applies-late);
    # the relay sent them in order. Everything else is the relay's to answer for.
    assert [p for p in result.problems if not p.startswith("late (API)")] == []
    assert (result.lost, result.duplicates, result.out_of_order) == (0, 0, 0)
    assert result.dead_letters == 0
    assert result.delivered == result.expected > 0
    if scenario in RESENT_AT_MOST:
        assert result.resent <= RESENT_AT_MOST[scenario]
