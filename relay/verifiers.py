"""How platforms prove a request genuine. A new platform picks one; it writes no crypto.

Every comparison is constant-time (`hmac.compare_digest`), and no error message repeats a
secret, a token or a signature.

Every platform's secret or token may hold several values separated by spaces, so a secret
can be rotated without refusing what is in flight (and WooCommerce gives each webhook its
own secret): `verify_any` tries each value with the platform's verifier and says which one
matched, by position. A verifier itself sees one value at a time; `sign` uses the first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.mapping import AuthError, IncomingRequest, Verifier
from relay.settings import secret_values


class WooCommerceSignature:
    """`X-WC-Webhook-Signature` = base64(HMAC-SHA256(raw body, secret))."""

    kind = "hmac-sha256-base64"
    description = "X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body with the webhook secret"
    header = "X-WC-Webhook-Signature"

    def verify(self, request: IncomingRequest, secret: str) -> None:
        given = request.header(self.header)
        if not given:
            raise AuthError("missing_signature", f"the {self.header} header is missing")
        expected = self._digest(request.body, secret)
        try:
            given_bytes = base64.b64decode(given.strip(), validate=True)
        except (ValueError, TypeError):
            given_bytes = b""
        if not hmac.compare_digest(given_bytes, expected):
            raise AuthError(
                "bad_signature",
                f"the {self.header} header does not match the body signed with the webhook secret",
            )

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        digest = self._digest(body, first_value(secret))
        return {self.header: base64.b64encode(digest).decode("ascii")}

    @staticmethod
    def _digest(body: bytes, secret: str) -> bytes:
        return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


class SharedToken:
    """A secret token in the URL path (`/webhooks/<platform>/<token>`) or `X-Relay-Token`.

    For postbacks, which cannot sign: the merchant pastes a URL that carries the token.
    """

    kind = "token"
    description = "secret token in the URL path /webhooks/<platform>/<token> or X-Relay-Token"
    header = "X-Relay-Token"

    def verify(self, request: IncomingRequest, secret: str) -> None:
        given = request.path_token or request.header(self.header)
        if not given:
            raise AuthError("missing_token", "no token in the URL path or the X-Relay-Token header")
        if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
            raise AuthError("bad_token", "the token does not match")

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        return {self.header: first_value(secret)}


class StandardWebhooksSignature:
    """Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` within
    5 minutes, `webhook-signature` = space-separated `v1,<base64 HMAC-SHA256>` of
    `<id>.<timestamp>.<body>` keyed by the `whsec_` secret.

    Rotation works both ways: a sender may sign with several secrets (several signatures in
    the header), and the relay's setting may hold several secrets separated by spaces.
    """

    kind = "standard-webhooks"
    description = "Standard Webhooks headers webhook-id, webhook-timestamp, webhook-signature"
    TOLERANCE_SECONDS = 5 * 60

    def verify(self, request: IncomingRequest, secret: str) -> None:
        headers = {
            name: request.header(name) or ""
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        if not all(headers.values()):
            raise AuthError(
                "missing_signature",
                "Standard Webhooks headers webhook-id, webhook-timestamp and "
                "webhook-signature are required",
            )
        try:
            sent_at = float(headers["webhook-timestamp"])
        except ValueError:
            sent_at = float("nan")
        if not abs(time.time() - sent_at) <= self.TOLERANCE_SECONDS:  # NaN fails too
            raise AuthError(
                "stale_timestamp", "webhook-timestamp is more than 5 minutes from the relay's clock"
            )
        for one_secret in split_secrets(secret):
            try:
                Webhook(one_secret).verify(request.body, headers, json_parse=False)
                return
            except (WebhookVerificationError, ValueError):
                # ValueError: a malformed signature list or a body that is not UTF-8.
                continue
        raise AuthError("bad_signature", "no webhook-signature matches the body and the secret")

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        message_id = f"msg_{secrets.token_hex(12)}"
        now = datetime.now(UTC)
        signatures = [
            Webhook(s).sign(message_id, now, body.decode("utf-8")) for s in split_secrets(secret)
        ]
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(signatures),
        }


def verify_any(verifier: Verifier, request: IncomingRequest, values: tuple[str, ...]) -> int:
    """Which of the secret's values (1-based) proves the request genuine; AuthError (the
    first value's) when none does. One value, the usual case: one call, nothing more."""
    if len(values) == 1:
        verifier.verify(request, values[0])
        return 1
    refused: AuthError | None = None
    for position, value in enumerate(values, start=1):
        try:
            verifier.verify(request, value)
            return position
        except AuthError as exc:
            refused = refused or exc
    raise refused or AuthError("bad_signature", "no secret is configured")


def first_value(secret: str) -> str:
    """What a sender signs with when the setting holds several values (relay send)."""
    values = secret_values(secret)
    return values[0] if values else secret


def split_secrets(value: str) -> list[str]:
    """Standard Webhooks secrets: separated by spaces or commas (whsec_ secrets hold no
    comma; other platforms' secrets may, so they split on spaces only)."""
    return [part for part in value.replace(",", " ").split() if part]


def check_standard_webhooks_secret(value: str) -> str | None:
    """A problem with a RELAY_..._SECRET for Standard Webhooks, or None."""
    for part in split_secrets(value):
        if not part.startswith("whsec_"):
            return "expected a Standard Webhooks secret starting with whsec_"
        try:
            key = base64.b64decode(part[len("whsec_") :], validate=True)
        except ValueError:
            return "the part after whsec_ is not base64"
        if len(key) < 16:
            return "the secret is too short (at least 16 bytes after whsec_)"
    return None


# What a URL path segment holds as it is (RFC 3986 pchar without %-escapes). Not / ? # %
# or spaces, which would cut or change the URL, nor { }, which look like a platform's
# placeholders (Sticky.io's `{order_id}`).
_PATH_SAFE = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
MIN_TOKEN_LENGTH = 16


def check_token(token: str) -> str | None:
    """A problem with a RELAY_..._TOKEN for `SharedToken`, or None. The token travels in the
    URL path: long enough not to be guessed, and URL-safe. Every token platform's setting
    is checked with it unless the platform declares its own `check_secret`."""
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"use at least {MIN_TOKEN_LENGTH} characters (for example the output of "
            "`openssl rand -hex 24`)"
        )
    if not _PATH_SAFE.fullmatch(token):
        return "use letters and digits, no / ? # % { } or spaces (it is part of the URL path)"
    return None
