"""Who may use /admin: the admin token as a bearer header (scripts), or a session cookie that
logging in with the token gives (people with a browser).

The cookie never holds the token. It holds a random session id, signed with itsdangerous
under a key derived from the admin token and a random per-relay secret kept in Redis:

- rotating RELAY_ADMIN_TOKEN changes the key, so every session ends at once;
- a stolen cookie does not let anyone test guesses of a weak token offline, because the
  Redis secret is part of the key and never leaves Redis.

Each session id is also recorded in Redis for the session's lifetime, so logging out really
ends the session (a signed cookie alone would stay valid until it expires).

Requests that change state with the cookie must carry a CSRF token: an HMAC of the session
id under the same key, so nothing more is stored and every session has its own. Bearer
requests need none: a browser never adds that header by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis import Redis

from relay.rate_limits import RateLimit

SESSION_COOKIE = "relay_admin"
SESSION_SECONDS = 8 * 3600  # a working day; then log in again
CSRF_FIELD = "csrf_token"

_RELAY_SECRET_KEY = "relay:admin:secret"
_SESSION_PREFIX = "relay:admin:session:"


def tokens_match(given: str, expected: str) -> bool:
    """Constant time, and comparing digests does not even reveal the token's length."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header; None for no header or another
    scheme. An empty token is returned as "" (and then refused as wrong)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


@dataclass(frozen=True)
class AdminSession:
    sid: str
    csrf_token: str


class Sessions:
    """Browser sessions of the admin page, valid only under the current admin token."""

    def __init__(self, redis: Redis, admin_token: str):
        self.redis = redis
        self.admin_token = admin_token
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = hmac.new(
                self._relay_secret(), b"relay-admin\0" + self.admin_token.encode(), "sha256"
            ).digest()
        return self._key

    def _relay_secret(self) -> bytes:
        # The first process to ask creates it; SET NX makes every process agree on it.
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(_RELAY_SECRET_KEY, secrets.token_hex(32), nx=True)
        pipe.get(_RELAY_SECRET_KEY)
        return pipe.execute()[1]

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.key, salt="relay-admin-session")

    def _csrf_for(self, sid: str) -> str:
        return hmac.new(self.key, b"csrf\0" + sid.encode(), "sha256").hexdigest()

    @staticmethod
    def _record(sid: str) -> str:
        # Only a digest of the id is stored: what Redis holds cannot be turned into a cookie.
        return _SESSION_PREFIX + hashlib.sha256(sid.encode()).hexdigest()

    def start(self) -> tuple[AdminSession, str]:
        """A new session and the cookie value that carries it."""
        sid = secrets.token_urlsafe(32)
        self.redis.set(self._record(sid), "1", ex=SESSION_SECONDS)
        return AdminSession(sid, self._csrf_for(sid)), self._serializer().dumps({"sid": sid})

    def resume(self, cookie: str) -> AdminSession | None:
        """The session a cookie carries, or None when it is forged, expired, signed under an
        older token, or logged out."""
        try:
            data = self._serializer().loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:  # includes SignatureExpired
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not self.redis.exists(self._record(sid)):
            return None
        return AdminSession(sid, self._csrf_for(sid))

    def end(self, session: AdminSession) -> None:
        self.redis.delete(self._record(session.sid))

    @staticmethod
    def csrf_ok(session: AdminSession, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode(), session.csrf_token.encode()
        )


@dataclass(frozen=True)
class TokenCheck:
    ok: bool  # the token is right
    blocked: bool  # not even compared: this client used up its attempts
    retry_after: int  # seconds until the client's window ends


class FailedLogins:
    """Admin token checks, limited per client address and counted in Redis across every
    process. Each check first takes a slot in the client's window, atomically, and only
    then compares the token, so a burst of guesses at once gets no more than LIMIT
    compared; a right token gives its slot back. Past LIMIT in a window, checks from that
    address are refused (429) until the window ends. Per address (the proxy's client
    address with RELAY_TRUST_PROXY=yes), so a stranger's guesses lock out only the
    stranger, not the operator. Sessions already open keep working."""

    LIMIT = 20
    WINDOW_SECONDS = 60

    def __init__(self, redis: Redis):
        self.attempts = RateLimit(redis, "admin-login", self.LIMIT, self.WINDOW_SECONDS)

    def check(self, client: str, given: str, expected: str) -> TokenCheck:
        verdict = self.attempts.hit(client)
        if not verdict.allowed:
            return TokenCheck(ok=False, blocked=True, retry_after=verdict.retry_after)
        if tokens_match(given, expected):
            self.attempts.release(client)
            return TokenCheck(ok=True, blocked=False, retry_after=0)
        return TokenCheck(ok=False, blocked=False, retry_after=verdict.retry_after)
