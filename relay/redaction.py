"""Secrets kept out of what the relay shows: the admin page and the `relay` command both
replace them in stored events (a platform may echo its own token in a payload)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relay.settings import Settings

REDACTED = "[redacted]"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the relay knows, longest first (so no secret is half-replaced by a
    shorter one it contains). Standard Webhooks secrets may be several, space-separated."""
    found = {settings.admin_token, settings.commerce_api_key}
    for value in settings.platform_secrets.values():
        found.add(value)
        found.update(value.split())
    for store in settings.stores.values():  # a store's consumer key and secret
        found.update(store.credentials.values())
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every occurrence of a secret replaced, in every string it contains.

    Stored events never hold a signature or a token (ingest keeps only metadata headers);
    this guards against a platform echoing a secret inside its own payload."""
    secrets = list(secrets)
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value
