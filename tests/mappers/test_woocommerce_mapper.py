"""WooCommerce mapping rules the golden fixtures cannot state."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.events import RawEvent
from relay.registry import default_registry

FIXTURES = Path(__file__).parents[2] / "mappers/woocommerce/fixtures"

# In a child: the old tag-stripping regex took about 35 s on this description (quadratic in
# a run of "<"), so a failing run ends at the timeout instead of holding the suite.
_MAP_A_PRODUCT = """
import json
from relay.events import RawEvent
from relay.registry import default_registry
product = {"id": 41, "name": "Mug", "status": "publish", "type": "simple",
           "description": "<p>A mug</p> " + "<" * 200_000}
event = RawEvent("e", "woocommerce", "product.updated", 0.0, json.dumps(product).encode())
[record] = default_registry().get("woocommerce").map_event(event, {})
print(json.dumps(record.data["description"][:20]))
"""


def test_html_of_a_description_is_stripped_in_linear_time():
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MAP_A_PRODUCT], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("stripping the tags of a 200 KB description took over 20 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '"A mug <<<<<<<<<<<<<<"'


def test_a_customer_is_new_for_a_day_after_registering():
    woo = default_registry().get("woocommerce")
    body = (FIXTURES / "customer.created.json").read_bytes()  # registered 2024-03-05 09:42:11
    registered = datetime(2024, 3, 5, 9, 42, 11, tzinfo=UTC).timestamp()

    def created_at(delay: float) -> str | None:
        event = RawEvent("e", "woocommerce", "customer.created", registered + delay, body)
        [record] = woo.map_event(event, {})
        return record.data.get("createdAt")

    assert created_at(5) is None  # a registration: welcome sequences apply
    assert created_at(23 * 3600) is None  # delivered late by a stalled cron: still new
    assert created_at(25 * 3600) == "2024-03-05T09:42:11Z"  # imported: no welcome sequence
