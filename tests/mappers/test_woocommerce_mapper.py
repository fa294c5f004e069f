"""WooCommerce mapping rules the golden fixtures cannot state."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
