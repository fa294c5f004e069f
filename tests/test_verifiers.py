from __future__ import annotations

import pytest

from relay.mapping import AuthError, IncomingRequest
from relay.registry import default_registry
from relay.settings import ConfigError, Settings
from relay.verifiers import SharedToken, WooCommerceSignature

BODY = b'{"id": 1}'


def request(headers=None, token=None) -> IncomingRequest:
    return IncomingRequest("POST", headers or {}, BODY, path_token=token)


def test_woocommerce_signature_round_trip():
    verifier = WooCommerceSignature()
    headers = verifier.sign(BODY, "secret")
    verifier.verify(request(headers), "secret")
    # Header names arrive in any casing (proxies rewrite them).
    lowered = {k.lower(): v for k, v in headers.items()}
    verifier.verify(request(lowered), "secret")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"X-WC-Webhook-Signature": ""}, "missing_signature"),
        ({"X-WC-Webhook-Signature": "not base64!"}, "bad_signature"),
        ({"X-WC-Webhook-Signature": "c2lnbmVk"}, "bad_signature"),
    ],
)
def test_woocommerce_signature_refusals(headers, code):
    with pytest.raises(AuthError) as refused:
        WooCommerceSignature().verify(request(headers), "secret")
    assert refused.value.code == code


def test_woocommerce_signature_with_another_secret_is_refused():
    headers = WooCommerceSignature().sign(BODY, "other")
    with pytest.raises(AuthError):
        WooCommerceSignature().verify(request(headers), "secret")


def test_token_in_path_or_header():
    SharedToken().verify(request(token="t0ken"), "t0ken")
    SharedToken().verify(request({"X-Relay-Token": "t0ken"}), "t0ken")
    for bad in (request(token="nope"), request({"X-Relay-Token": "t0ke"}), request()):
        with pytest.raises(AuthError) as refused:
            SharedToken().verify(bad, "t0ken")
        assert "t0ken" not in refused.value.message


def test_f14_every_token_platform_refuses_a_weak_token_at_start_up():
    # Review: RELAY_CHECKOUTCHAMP_TOKEN=abc started, and /webhooks/checkoutchamp/abc took
    # postbacks. A token is all that proves a postback genuine.
    specs = default_registry().settings_specs()
    token_settings = [spec.secret_variable for spec in specs if spec.secret_kind == "token"]
    assert {"RELAY_CHECKOUTCHAMP_TOKEN", "RELAY_STICKYIO_TOKEN"} <= set(token_settings)
    for variable in token_settings:
        for weak in ("abc", "a-15-char-token", "a-long-token/with-a-slash"):
            with pytest.raises(ConfigError) as error:
                Settings.from_env({variable: weak}, platforms=specs)
            assert str(error.value).startswith(f"{variable}: ")
            assert weak not in str(error.value)
        strong = "0b9c1e7f3a5d48e2a6c4"
        assert Settings.from_env({variable: strong}, platforms=specs).platform_secrets
