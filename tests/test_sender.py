"""`relay send`: every fixture of every platform, signed as its platform would sign it, is
accepted by the relay's own ingest."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from relay.app import create_app
from relay.fixtures import body_files
from relay.registry import default_registry
from relay.sender import SendError, build_request
from relay.verifiers import StandardWebhooksSignature


def secret_for(platform) -> str:
    if isinstance(platform.verifier, StandardWebhooksSignature):  # wants a whsec_ secret
        return "whsec_" + base64.b64encode(b"sender-test-secret-of-32-bytes!!").decode()
    return f"{platform.name}-test-secret"


def fixture_files():
    for platform in default_registry():
        for path in body_files(platform):
            yield pytest.param(platform, path, id=f"{platform.name}/{path.name}")


@pytest.fixture
def client(settings, redis):
    secrets = {p.name: secret_for(p) for p in default_registry()}
    return create_app(replace(settings, platform_secrets=secrets), redis=redis).test_client()


@pytest.mark.parametrize(("platform", "path"), list(fixture_files()))
def test_every_fixture_sent_as_its_platform_is_accepted(client, platform, path: Path):
    outgoing = build_request(platform, secret_for(platform), path, topic=None)
    response = client.open(
        outgoing.path, method=outgoing.method, headers=outgoing.headers, data=outgoing.body
    )
    assert response.status_code in (200, 202), response.get_json()
    assert response.get_json()["status"] in ("accepted", "ignored", "duplicate")


def test_woocommerce_needs_a_topic(tmp_path):
    body = tmp_path / "order.json"
    body.write_text("{}")
    woo = default_registry().get("woocommerce")
    with pytest.raises(SendError, match="--topic"):
        build_request(woo, "s", body, topic=None)
    assert build_request(woo, "s", body, "order.updated").headers["X-WC-Webhook-Topic"] == (
        "order.updated"
    )
