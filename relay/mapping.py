"""The mapper kit: what a platform package declares and what its mapper returns.

A platform package (`mappers/<name>/__init__.py`, or a third-party package registered under
the `relay.mappers` entry point group) exposes one `PLATFORM = Platform(...)`. Its mapper is a
pure function `(RawEvent, options) -> list[Record]`: no I/O, no Redis, no clock. Everything
that needs memory across events (order lifecycle, variant lists, last write wins) is the
worker's job, fed by the `Record` fields below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from relay.events import RawEvent, parse_fields
from relay.store_api import StoreSpec

RecordKind = Literal[
    "product", "product_delete", "variant", "order", "checkout", "back_in_stock", "subscriber"
]
RECORD_KINDS: tuple[str, ...] = (
    "product",
    "product_delete",
    "variant",
    "order",
    "checkout",
    "back_in_stock",
    "subscriber",
)


@dataclass(frozen=True)
class Record:
    """One normalized record, in the Commerce API's own shape.

    kind            data
    product         a ProductInput (POST /api/v1/products)
    product_delete  {"productId": ...} (DELETE /api/v1/products/{productId})
    variant         {"productId": parent id, "variant": a VariantInput}: one variant of a
                    product whose other variants the relay must remember (never sent alone,
                    because sending `variants` replaces the whole list)
    order           an Order (POST /api/v1/orders)
    checkout        a Checkout (POST /api/v1/checkouts)
    back_in_stock   a BackInStock request (POST /api/v1/back-in-stock)
    subscriber      a registered customer, as the platform knows them now (a full snapshot: a
                    name left out is no name): {"email", "externalId"?, "firstName"?,
                    "lastName"?, "createdAt"?}. The worker creates the subscriber once
                    (POST /api/v1/subscribers) and sends later changes by externalId
                    (PATCH /api/v1/subscribers/external). `createdAt` only for a customer
                    who is not new (imported ones then skip welcome sequences).
    """

    kind: RecordKind
    data: dict[str, Any]
    # The platform's own modification time of the entity (ISO 8601, UTC), for last-write-wins.
    modified_at: str | None = None
    # Facts for the worker's entity rules that are not part of the API payload, for example
    # {"variantIds": [...]} for a product whose complete variant list is known by id.
    hints: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "data": self.data}
        if self.modified_at is not None:
            out["modified_at"] = self.modified_at
        if self.hints:
            out["hints"] = self.hints
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            kind=data["kind"],
            data=dict(data["data"]),
            modified_at=data.get("modified_at"),
            hints=dict(data.get("hints") or {}),
        )


class IgnoreEvent(Exception):
    """Raised by a mapper for an event that is genuine but has nothing to send.

    The reason is recorded (logs, metrics); the event is not dead-lettered.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MappingError(Exception):
    """Raised by a mapper for an event it cannot make sense of. The event is dead-lettered."""


def id_text(value: Any, what: str) -> str | None:
    """A platform's id as the API's id: a string or an integer, as stripped text; None when
    absent or empty. Anything else is no id (an object would be sent as "{'a': 1}", a float
    as "12.0"): MappingError, which names the type, not the value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MappingError(f"{what} is not a string or an integer but a {type(value).__name__}")
    return str(value).strip() or None


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of an HTTP request that verifiers and intake functions may look at."""

    method: str
    headers: Mapping[str, str]  # case-insensitive lookups (werkzeug Headers or a lower-case dict)
    body: bytes
    query: str = ""
    content_type: str = ""
    path_token: str | None = None  # the `<token>` segment of /webhooks/<platform>/<token>

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is None and isinstance(self.headers, dict):
            value = self.headers.get(name.lower())
        return value

    def fields(self) -> dict[str, Any]:
        """Postback fields (query string, form or JSON body); ValueError when malformed."""
        return parse_fields(self.query, self.body, self.content_type)


# Topics are short names (`order.created`, `new_sale`). Ingest logs them, and WooCommerce's
# comes from a header the signature does not cover: a longer one is refused (400).
MAX_TOPIC_LENGTH = 100


@dataclass(frozen=True)
class Intake:
    """What ingest learns from a verified request without mapping it."""

    topic: str
    # The platform's id for this delivery, when it has one; duplicates are dropped by it.
    delivery_id: str | None = None
    # Non-secret headers worth keeping with the raw event (lower-case names).
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """Raised by an intake function for a request it cannot take: 400, 415 for the wrong
    content type, 422 with field errors in `details` for a body that fails validation."""

    def __init__(self, code: str, message: str, status: int = 400, details: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details


class AuthError(Exception):
    """Raised by a verifier when the request is not proven genuine (answered 401)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Verifier(Protocol):
    """Proves a request genuine. Implementations live in `relay.verifiers`."""

    kind: str  # short name shown by `relay mappers`, e.g. "hmac-sha256-base64"
    description: str  # one line for merchants: where the secret goes

    def verify(self, request: IncomingRequest, secret: str) -> None:
        """Return if the request is genuine; raise AuthError otherwise."""

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        """Headers a genuine sender would add to `body` (used by `relay send` and tests)."""


Mapper = Callable[[RawEvent, Mapping[str, str]], list[Record]]
Describe = Callable[[IncomingRequest], Intake]
Handshake = Callable[[IncomingRequest], bool]


def _never(_request: IncomingRequest) -> bool:
    return False


@dataclass(frozen=True)
class Platform:
    """A platform's declaration: everything `relay/` needs to serve it."""

    name: str  # URL segment and settings prefix: /webhooks/<name>, RELAY_<NAME>_SECRET
    title: str  # for people: "WooCommerce"
    verifier: Verifier
    describe: Describe  # topic and delivery id of a verified request; raises BadRequest
    map_event: Mapper  # pure: RawEvent -> records
    topics: frozenset[str]  # topics the mapper handles; anything else is answered `ignored`
    secret_kind: Literal["secret", "token"] = "secret"
    options: tuple[str, ...] = ()  # extra settings, read from RELAY_<NAME>_<OPTION>
    methods: tuple[str, ...] = ("POST",)
    # Handshakes (WooCommerce's activation ping) are answered 200 before authentication.
    is_handshake: Handshake = _never
    # How the platform authenticates, for its secret setting: returns a problem or None.
    check_secret: Callable[[str], str | None] | None = None
    # Token platforms take the token in the URL path: /webhooks/<name>/<token>.
    token_in_path: bool = False
    # Topics that are genuine but deliberately unused, with the reason given in the answer
    # ({"decline": "a declined payment is not an order"}).
    ignored_topics: Mapping[str, str] = field(default_factory=dict)
    # What a merchant pastes into the platform, shown by `relay mappers`, one URL per line.
    # `{relay}` is the relay's base URL and `{token}` the secret token; the platform's own
    # placeholders stay.
    url_template: str = ""
    # Headers a real sender adds besides authentication, for `relay send` (topic, body).
    send_headers: Callable[[str, bytes], dict[str, str]] | None = None
    # The platform's store API, for sync, reconcile and webhook health (relay/store_api.py);
    # None: the relay only hears what the platform pushes.
    store: StoreSpec | None = None


@dataclass(frozen=True)
class Source:
    """An event source of the relay's own, beside the platforms: the storefront's
    back-in-stock requests (relay/storefront/). Its events are stored, mapped and delivered
    like a platform's, by the same worker, entity rules and dead letters, but it takes no
    webhooks: no verifier, no secret, no URL under /webhooks/, not listed by `relay mappers`.
    A built-in package declares it as `SOURCE = Source(...)` (mappers/storefront/)."""

    name: str  # the events' `platform`: their dedup marks, stats and dead letters
    title: str
    map_event: Mapper  # pure: RawEvent -> records
    topics: frozenset[str]
