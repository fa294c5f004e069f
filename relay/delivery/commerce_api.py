"""Sending requests to the Commerce API, and what each answer means for the event.

2xx is done. 408, 409, 429, 5xx, timeouts and connection errors are transient (retry later,
honouring Retry-After). Any other 4xx is permanent: retrying will not fix it. A DELETE that
finds nothing (404) is done: the product is already gone.

With no API key the relay is in sandbox mode and `SandboxClient` records each request in
Redis instead of sending it (`relay sandbox` shows them).
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "commerce-relay/0.1 (+self-hosted)"
TRANSIENT_STATUSES = frozenset({408, 409, 429})
MAX_KEPT_BODY = 2000  # characters of an error body kept for dead letters


def encode_body(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class ApiRequest:
    """One request to the Commerce API, planned by the worker from normalized records.

    The body is serialised when the request is made (at plan time, inside the event's own
    exception boundary), and those bytes are what is sent: a body that cannot be encoded
    fails its event there, not the send of a whole chunk later, deeper in the stack."""

    method: str
    path: str  # e.g. /api/v1/orders
    body: dict[str, Any] | None = None
    entity: str = ""  # what it is about, for logs: "order:123"
    guard: dict[str, Any] | None = None  # the entity rule checked before each attempt
    key: str = ""  # Idempotency-Key: the same for every attempt of this request
    encoded: str | None = field(default=None, compare=False, repr=False)  # the body as sent

    def __post_init__(self) -> None:
        if self.encoded is None and self.body is not None:
            object.__setattr__(self, "encoded", encode_body(self.body))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "entity": self.entity,
            "guard": self.guard,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiRequest:
        return cls(
            data["method"],
            data["path"],
            data.get("body"),
            data.get("entity", ""),
            data.get("guard"),
            data.get("key", ""),
        )


def product_path(product_id: str) -> str:
    return f"/api/v1/products/{quote(product_id, safe='')}"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    transient: bool = False
    status: int | None = None
    retry_after: float | None = None  # seconds, when the API said so
    error: str = ""
    body: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "body": self.body}


class Client(Protocol):
    def send(self, request: ApiRequest, event_id: str = "") -> Outcome: ...


def classify(method: str, status: int, headers: Any, body: str, duration: float) -> Outcome:
    if 200 <= status < 300 or (method == "DELETE" and status == 404):
        return Outcome(ok=True, status=status, duration=duration)
    transient = status in TRANSIENT_STATUSES or status >= 500
    return Outcome(
        ok=False,
        transient=transient,
        status=status,
        retry_after=parse_retry_after(headers) if transient else None,
        error=f"HTTP {status}{_api_error_summary(body)}",
        body=body[:MAX_KEPT_BODY],
        duration=duration,
    )


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _api_error_summary(body: str) -> str:
    """The API's `code`/`message` when its error body has them (it has two shapes)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
    else:
        code, message = data.get("code"), error if isinstance(error, str) else data.get("message")
    parts = [str(p) for p in (code, message) if p]
    return f": {' '.join(parts)}" if parts else ""


class CommerceClient:
    """A real client: one keep-alive session per worker process, whose connection pool
    holds a connection for each request the dispatcher keeps in flight (threads share it:
    urllib3's pool is thread-safe, and the session keeps no cookies here)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 15.0, pool_size: int = 1):
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(5.0, timeout), timeout)  # (connect, read)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), pool_block=True)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )

    def send(self, request: ApiRequest, event_id: str = "") -> Outcome:
        url = self.base_url + request.path
        data = request.encoded
        headers = {}
        if event_id:
            headers["X-Relay-Event-Id"] = event_id
        if request.key:
            # The API does not document idempotency keys; sending one costs nothing and lets
            # an API (or a proxy) that honours them drop a repeat after a worker crash.
            headers["Idempotency-Key"] = request.key
        started = time.monotonic()
        try:
            response = self.session.request(
                request.method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            return Outcome(
                ok=False,
                transient=True,
                error=f"{type(exc).__name__}: could not reach the Commerce API",
                duration=time.monotonic() - started,
            )
        except requests.RequestException as exc:
            return Outcome(
                ok=False, error=f"{type(exc).__name__}: {exc}", duration=time.monotonic() - started
            )
        return classify(
            request.method,
            response.status_code,
            response.headers,
            response.text,
            time.monotonic() - started,
        )

    def probe(self) -> Outcome:
        """The account endpoint: a cheap authenticated check for `relay check`."""
        return self.send(ApiRequest("GET", "/api/v1/account"))


class SandboxClient:
    """Sandbox mode: record what would have been sent; nothing leaves the machine."""

    KEY = "relay:sandbox"
    KEEP = 1000

    def __init__(self, redis: Any):
        self.redis = redis

    def send(self, request: ApiRequest, event_id: str = "") -> Outcome:
        record = {"at": time.time(), "event_id": event_id, **request.to_dict()}
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(self.KEY, json.dumps(record, separators=(",", ":")))
        pipe.ltrim(self.KEY, 0, self.KEEP - 1)
        pipe.execute()
        return Outcome(ok=True, status=200)

    def latest(self, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self.KEY, 0, max(limit, 1) - 1)]
