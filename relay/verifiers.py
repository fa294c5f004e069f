"""How platforms prove a request genuine. A new platform picks one; it writes no crypto.

Every comparison is constant-time (`hmac.compare_digest`), and no error message repeats a
secret, a token or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from relay.mapping import AuthError, IncomingRequest


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
        return {self.header: base64.b64encode(self._digest(body, secret)).decode("ascii")}

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
        return {self.header: secret}
