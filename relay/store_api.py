"""The store kit: what a platform's store client and the sync engine say to each other.

A platform whose store has an API (WooCommerce's REST API) declares it beside its mapper:
`Platform(..., store=StoreSpec(credentials=(...), client=make_client))`, the client in
`mappers/<name>/store.py`. The engine (relay/sync/) does everything that is not the
platform's: settings, the store lock, pacing and backoff, checkpoints, progress, the inbox,
scheduling. The client knows the API: paths, authentication, paging, resource shapes.

    engine ──StoreConfig, StoreHttp──▶ make_client() ──▶ client
    engine ──phase, cursor──▶ client.fetch() ──▶ Page(items, cursor, total, skipped, sightings)
    engine: items become RawEvents of the platform, pushed into the inbox with the new cursor
            in one Redis transaction; the workers map and deliver them like webhooks

Rules a client keeps:
- **No I/O of its own.** Its HTTP is the `StoreHttp` it was given: the engine's paced
  session (one request at a time, the store's pace, backoff on 429/503/timeouts honouring
  Retry-After, a descriptive User-Agent, no URL with a secret in any log). A mapper package
  imports only the shared model, so it cannot reach the engine otherwise.
- **No memory between calls.** What it needs to go on is the `cursor` it returns (JSON),
  which the engine keeps in Redis with the events of the page: a sync killed at any moment
  resumes at the first page not stored, and nothing is pushed twice.
- **Items are webhook bodies.** An item's topic and body are what the platform's webhook
  would carry for that record, so the mapper, the entity rules (last write wins by the
  platform's modified time, no-op suppression) and the dead letters treat it as one.
- **Read only**, except what the relay itself owns on the store (its webhooks).

Failures it raises: `StoreAuthError` (credentials refused: the run stops with one line
naming the settings), `StoreWriteRefused` (a read-only key asked to write),
`StoreUnavailable` (the session gave up after its backoff: the run stops, resumable),
`StoreError` (anything else the store answered that the client cannot go on with).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.settings import StoreConfig

# The header that says where a stored event came from; webhooks have none (ingest keeps only
# the platform's own headers). Its values: the ORIGIN_* below.
ORIGIN_HEADER = "x-relay-origin"
ORIGIN_SYNC = "sync"  # a backfill (`relay sync`, the admin's "Sync store")
ORIGIN_RECONCILE = "reconcile"  # a reconcile run: what webhooks may have missed
ORIGIN_COMPLETION = "completion"  # a product fetched whole for a held variation
RUN_HEADER = "x-relay-run"  # the sync or reconcile run that fetched it


class StoreError(Exception):
    """The store answered something the run cannot go on with. One line, no secret."""


class StoreAuthError(StoreError):
    """The store refused the credentials (401/403 on a read): stop, and say which settings."""


class StoreWriteRefused(StoreError):
    """The key may read but not write (repairing webhooks needs a Read/Write key)."""


class StoreUnavailable(StoreError):
    """No usable answer after the session's backoff (an outage, a host's rate limit)."""


@dataclass(frozen=True)
class StoreResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; StoreError when it is not (a WAF's HTML page, a PHP notice)."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            raise StoreError(
                f"the store answered {self.status} with a body that is not JSON"
            ) from None


class StoreHttp(Protocol):
    """The engine's paced session, as a client sees it.

    Answers 429, 502-504, 508, 52x, timeouts and connection errors are retried inside it
    (with backoff, at least what Retry-After asks); `server_errors` more tries are given to
    a 500. Every other answer is returned, whatever its status. Raises StoreUnavailable
    when its backoff is spent. `params` and `headers` may carry credentials: the session
    never logs them, nor a URL's query string."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        server_errors: int = 2,
    ) -> StoreResponse: ...


@dataclass(frozen=True)
class Phase:
    """One walk over a store resource within a run: products, customers, guests, orders.

    `params` (JSON) is what the client needs to rebuild the walk in any process: a time
    window, a date to start from. The engine keeps the phases of a run in Redis."""

    name: str
    title: str  # for people: "products", "guest buyers (from orders)"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """One record fetched from the store, as the platform's webhook would carry it."""

    topic: str
    body: bytes  # JSON: the resource (the platform's webhook body)
    ref: str  # what it is, for logs: "product 41" (never customer data)
    # The platform's own change time of the record (ISO 8601 UTC), when it has one.
    modified_at: str | None = None


@dataclass(frozen=True)
class Sighting:
    """A record that is known only from other records (a guest buyer, seen in orders).

    The engine keeps, per `key`, the `data` of the newest sighting (by `at`, an ISO 8601
    UTC time: compared as text) and the earliest and latest `at`; when the phase has read
    everything, `StoreClient.from_sightings` turns each key into an item."""

    key: str
    at: str
    data: dict[str, Any]


@dataclass
class Page:
    """What one `fetch` read: the items to push and where to go on from."""

    items: list[Item]
    cursor: dict[str, Any] | None  # the next call's cursor; None: the phase is complete
    # Rows left in the walk from this page on, this page's included, when the store says
    # (WooCommerce's X-WP-Total of the page's query): the engine's progress and ETA.
    remaining: int | None = None
    scanned: int = 0  # rows read (a guests scan reads orders and pushes none)
    skipped: list[str] = field(default_factory=list)  # rows the store could not return
    sightings: list[Sighting] = field(default_factory=list)


@dataclass(frozen=True)
class StoreWebhook:
    """One webhook as the store lists it."""

    id: str
    topic: str
    status: str  # WooCommerce: active, paused, disabled
    delivery_url: str
    name: str = ""
    api_version: str = ""


class StoreClient(Protocol):
    """A platform's store API, as the engine uses it. Times are ISO 8601 UTC text."""

    def backfill(self, orders_since: str | None, until: str) -> list[Phase]:
        """The phases of an initial sync, in order (catalog first); records changed after
        `until` (the sync's start) are left to reconcile. Orders only with `orders_since`."""

    def reconcile(self, since: str, until: str, full_scan: bool) -> list[Phase]:
        """The phases of one reconcile run: what changed in (since, until]. `full_scan`:
        also compare the resources that have no change filter (the engine asks daily)."""

    def fetch(self, phase: Phase, cursor: dict[str, Any] | None) -> Page:
        """The next page of a phase (`cursor` None: its first)."""

    def from_sightings(
        self, phase: Phase, key: str, newest: dict[str, Any], first_at: str, last_at: str
    ) -> Item:
        """The item for one record known from sightings (see Sighting)."""

    def product(self, product_id: str) -> Item | None:
        """One product as a webhook would carry it, a variable product with every variant
        (variant completion); None when the store no longer has it."""

    def webhooks(self) -> list[StoreWebhook]:
        """Every webhook the store has, whatever its status."""

    def create_webhook(self, topic: str, delivery_url: str, secret: str) -> StoreWebhook: ...

    def update_webhook(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        secret: str | None = None,
        api_version: str | None = None,
    ) -> StoreWebhook: ...

    @property
    def api_version(self) -> str:
        """The webhook API version whose bodies the mapper reads ("wp_api_v3")."""


@dataclass(frozen=True)
class StoreSpec:
    """A platform's store API, declared beside its mapper (`Platform.store`)."""

    # The secret settings it needs besides RELAY_<NAME>_STORE_URL: RELAY_<NAME>_<CREDENTIAL>.
    credentials: tuple[str, ...]
    client: Callable[[StoreConfig, StoreHttp], StoreClient]
    # What the merchant must create, for `relay check` and errors: "a REST API key ...".
    key_help: str = ""
    # The webhook topics `relay connect` creates; empty: the platform's topics.
    webhook_topics: Sequence[str] = ()
