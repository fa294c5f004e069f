"""The registry (relay/registry.py): platforms, and beside them the relay's own sources,
which the worker maps but which are no platform."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from click.testing import CliRunner

from relay import cli
from relay.registry import Registry, RegistryError, default_registry
from tests.conftest import as_body


def test_the_storefront_is_a_source_the_worker_maps_not_a_platform():
    registry = default_registry()
    source = registry.mapper_of("storefront")
    assert source is not None and source.name == "storefront"
    assert registry.mapper_of("woocommerce") is registry.get("woocommerce")
    assert registry.get("storefront") is None
    assert "storefront" not in registry
    assert "storefront" not in registry.names()
    assert all(p.name != "storefront" for p in registry)
    assert all(spec.name != "storefront" for spec in registry.settings_specs())


def test_no_webhook_route_and_no_line_in_relay_mappers(client, monkeypatch):
    answer = client.post("/webhooks/storefront", data=as_body({"email": "ann@example.com"}))
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "unknown_platform"
    for name in [k for k in os.environ if k.startswith("RELAY_")]:
        monkeypatch.delenv(name)
    listed = CliRunner().invoke(cli.main, ["mappers"])
    assert listed.exit_code == 0, listed.output
    assert "woocommerce" in listed.output
    assert "storefront" not in listed.output.lower()


def test_a_platform_may_not_take_a_sources_name():
    registry = default_registry()
    storefront = registry.mapper_of("storefront")
    woo = registry.get("woocommerce")
    with pytest.raises(RegistryError, match="storefront"):
        Registry({"storefront": replace(woo, name="storefront")}, {"storefront": storefront})
