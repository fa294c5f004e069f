"""Sending requests to the Commerce API, and what each answer means for the event.

2xx is done. A DELETE that finds nothing (404) is done: the product is already gone. For
a failure, the API's own word decides first: its error body (the SDK's `Error`: `error`,
`code`, `issues[]`, `retryable`) with an explicit `retryable: false` is permanent whatever
the status, and `retryable: true` is transient whatever the status. Otherwise 408, 429,
5xx, timeouts and connection errors are transient (retry later, honouring Retry-After,
`retry-after-ms` or X-RateLimit-Reset), and any other 4xx is permanent: retrying will not
fix it. A 409 is permanent unless it says a request with the same key is still in
progress (`conflict_is_transient`): the SDK documents 409 only for an idempotency key
reused with other content and for an email or id that another subscriber owns, and
resending the same bytes changes neither.

Every request carries `x-company-id` when RELAY_COMMERCE_COMPANY_ID is set: the workspace
a key that reaches several (a personal key) writes to (relay/delivery/account.py checks
which one that is).

With no API key the relay is in sandbox mode and `SandboxClient` records each request in
Redis instead of sending it (`relay sandbox` shows them).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from relay.settings import Settings

USER_AGENT = "commerce-relay/0.1 (+self-hosted)"
TRANSIENT_STATUSES = frozenset({408, 429})  # and 5xx; 409 is decided by its body
MAX_KEPT_BODY = 2000  # characters of an error body kept for dead letters
MAX_ISSUES = 10  # the SDK: "Up to ten entries"
MAX_ISSUE_CHARS = 300  # of each issue's path and message, and of the code and message
# A value above this is a Unix time, below it a number of seconds (X-RateLimit-Reset is
# Unix seconds for the SDK; some APIs send seconds to wait under the same name).
UNIX_TIME_FLOOR = 1_000_000_000


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

    @property
    def idempotency_key(self) -> str:
        """The Idempotency-Key header: the effect's key (relay/delivery/planning.py
        `effect_key`) and a digest of the bytes sent. The only documented semantics
        (POST /transactional/send) answer 409 to a key reused with a different body, so a
        key covers its body: a resend after a crash is the same bytes and the same key
        (an API that honours the header applies it once), and the same effect announced
        from a newer snapshot is a new key, never a conflict."""
        if not self.key or self.encoded is None:
            return self.key
        digest = hashlib.sha256(self.encoded.encode("utf-8")).hexdigest()[:16]
        return f"{self.key}:{digest}"

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
class ApiErrorBody:
    """What the API's error body says, in either of its shapes: the SDK's `Error`
    `{success?, error: str, code?, issues?[{path, message, allowedValues?}], retryable?}`
    (`AgentFriendlyError` has the same `error` and `code`), or the older
    `{error: {code, message}}`. Empty when the body is not JSON or has none of it."""

    code: str = ""
    message: str = ""
    issues: tuple[dict[str, Any], ...] = ()  # {path, message[, allowedValues]}, as sent
    retryable: bool | None = None  # the API's own word; None when it did not say

    def summary(self) -> str:
        """`CODE message (at path, path)`: one line for logs and the dead-letter list."""
        text = " ".join(p for p in (self.code, self.message) if p)
        paths = [issue["path"] for issue in self.issues[:3] if issue.get("path")]
        if paths:
            text += f" (at {', '.join(paths)}{', …' if len(self.issues) > 3 else ''})"
        return text.strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "issues": [dict(issue) for issue in self.issues],
            "retryable": self.retryable,
        }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    transient: bool = False
    status: int | None = None
    retry_after: float | None = None  # seconds, when the API said so
    error: str = ""
    body: str = ""
    duration: float = 0.0
    api_error: ApiErrorBody | None = None  # what the API's error body said, when it was JSON

    def to_dict(self) -> dict[str, Any]:
        """What a dead letter keeps of the answer: the API's code, message and issues
        readably beside the body as it came (cut)."""
        out: dict[str, Any] = {"status": self.status, "error": self.error, "body": self.body}
        if self.api_error is not None:
            out.update(self.api_error.to_dict())
        return out


class Client(Protocol):
    def send(self, request: ApiRequest, event_id: str = "") -> Outcome: ...


def classify(method: str, status: int, headers: Any, body: str, duration: float) -> Outcome:
    if 200 <= status < 300 or (method == "DELETE" and status == 404):
        return Outcome(ok=True, status=status, duration=duration)
    api_error = parse_error_body(body)
    transient = is_transient(status, api_error)
    summary = api_error.summary() if api_error is not None else ""
    return Outcome(
        ok=False,
        transient=transient,
        status=status,
        retry_after=parse_retry_after(headers) if transient else None,
        error=f"HTTP {status}: {summary}" if summary else f"HTTP {status}",
        body=body[:MAX_KEPT_BODY],
        duration=duration,
        api_error=api_error,
    )


def is_transient(status: int, api_error: ApiErrorBody | None) -> bool:
    """Would sending the same request again later succeed? The API's explicit `retryable`
    first, then the status (a 409 by what its body says)."""
    if api_error is not None and api_error.retryable is not None:
        return api_error.retryable
    if status == 409:
        return conflict_is_transient(api_error)
    return status in TRANSIENT_STATUSES or status >= 500


# A conflict that passes: the same key's first request is still being processed (as a
# Stripe-style idempotency layer answers a concurrent repeat). Anything else a 409 says
# (an idempotency key reused with other content, an email or id another subscriber owns,
# a 409 the relay cannot read) stays so however often the same bytes are sent again.
_IN_PROGRESS = re.compile(r"in[ _-]?progress|in[ _-]?use|concurrent|being processed", re.I)


def conflict_is_transient(api_error: ApiErrorBody | None) -> bool:
    if api_error is None:
        return False
    return bool(_IN_PROGRESS.search(f"{api_error.code} {api_error.message}"))


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `Retry-After` (seconds or an HTTP date) or
    `X-RateLimit-Reset` (a Unix time in seconds; a small number is read as seconds to
    wait), in that order, as the SDK reads them."""
    now = time.time() if now is None else now
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(when.timestamp() - now, 0.0)
    return _rate_limit_reset(headers.get("X-RateLimit-Reset"), now)


def _rate_limit_reset(value: str | None, now: float) -> float | None:
    try:
        reset = float((value or "").strip())
    except ValueError:
        return None
    if reset != reset or reset < 0:  # NaN or negative: not a time
        return None
    return max(reset - now, 0.0) if reset >= UNIX_TIME_FLOOR else reset


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return ""
    text = str(value).strip()
    return text if len(text) <= MAX_ISSUE_CHARS else text[:MAX_ISSUE_CHARS] + "…"


def _issues(raw: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for item in raw[:MAX_ISSUES]:
        if not isinstance(item, dict):
            continue
        issue: dict[str, Any] = {
            "path": _text(item.get("path")),
            "message": _text(item.get("message")),
        }
        allowed = item.get("allowedValues")
        if isinstance(allowed, list):
            issue["allowedValues"] = [_text(v) for v in allowed[:20]]
        out.append(issue)
    return tuple(out)


def parse_error_body(body: str) -> ApiErrorBody | None:
    """The API's code, message, issues and retryable from its error body (either shape);
    None when the body is not a JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):  # the older {"error": {"code", "message"}}
        code, message = error.get("code"), error.get("message")
    else:
        code, message = data.get("code"), error if isinstance(error, str) else data.get("message")
    retryable = data.get("retryable")
    return ApiErrorBody(
        code=_text(code),
        message=_text(message),
        issues=_issues(data.get("issues")),
        retryable=retryable if isinstance(retryable, bool) else None,
    )


def request_headers(api_key: str, company_id: str | None = None) -> dict[str, str]:
    """The headers every request to the Commerce API carries."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if company_id:
        # "Account-scoped keys select the target company with the x-company-id header"
        # (the SDK): without it a personal key writes to whichever workspace it selects now.
        headers["x-company-id"] = company_id
    return headers


class CommerceClient:
    """A real client: one keep-alive session per worker process, whose connection pool
    holds a connection for each request the dispatcher keeps in flight (threads share it:
    urllib3's pool is thread-safe, and the session keeps no cookies here).

    A delivery goes straight to the session's adapter with a request prepared here
    (`_prepare`): `Session.request` would parse and requote the URL, check every header,
    merge settings and hooks, and file the answer's cookies, for each request: 0.4 ms of
    CPU of 1 ms in a profile of the worker, where the base URL, the headers and the
    settings are the same for every request. The adapter does the rest as it always does
    (proxies, TLS, the pool, requests' exceptions)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 15.0,
        company_id: str | None = None,
        pool_size: int = 1,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(5.0, timeout), timeout)  # (connect, read)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), pool_block=True)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(request_headers(api_key, company_id))
        self._settle_environment()
        self._adapter = self.session.get_adapter(self.base_url)
        # The base URL as requests would prepare it (IDNA host, quoted path), once.
        self._base = requests.Request("GET", self.base_url).prepare().url.rstrip("/")  # type: ignore[union-attr]

    def _settle_environment(self) -> None:
        """Read the proxy and CA-bundle variables (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE)
        once, for the one host this client talks to. By default requests reads the whole
        environment and ~/.netrc on every request: a third of a request's CPU in a profile
        of the worker, and the environment does not change under a running process."""
        found = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.proxies.update(found["proxies"])
        self.session.verify = found["verify"]
        if found["cert"] is not None:
            self.session.cert = found["cert"]
        self.session.trust_env = False

    @classmethod
    def from_settings(cls, settings: Settings, pool_size: int = 1) -> CommerceClient:
        return cls(
            settings.commerce_api_url,
            settings.commerce_api_key or "",
            settings.api_timeout_seconds,
            settings.commerce_company_id,
            pool_size,
        )

    def send(self, request: ApiRequest, event_id: str = "") -> Outcome:
        headers = {}
        if event_id:
            headers["X-Relay-Event-Id"] = event_id
        if request.key:
            # Documented only for transactional sends; one that covers its body (see
            # ApiRequest.idempotency_key) lets an API or a proxy that honours it drop a
            # repeat after a worker crash, and never turns a newer body into a 409.
            headers["Idempotency-Key"] = request.idempotency_key
        started = time.monotonic()
        try:
            response = self._adapter.send(
                self._prepare(request, headers),
                timeout=self.timeout,
                verify=self.session.verify,
                cert=self.session.cert,
                proxies=self.session.proxies,
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            return _transient(exc, "could not reach the Commerce API", started)
        except (requests.RequestException, ValueError) as exc:  # ValueError: a bad header
            return Outcome(
                ok=False, error=f"{type(exc).__name__}: {exc}", duration=time.monotonic() - started
            )
        try:
            _ = response.content  # read to the end: the connection goes back to the pool
        except requests.RequestException as exc:
            return _transient(exc, "the Commerce API's answer was cut off", started)
        status = response.status_code
        return classify(
            request.method,
            status,
            response.headers,
            "" if 200 <= status < 300 else response.text,  # a success's text is not decoded
            time.monotonic() - started,
        )

    def _prepare(self, request: ApiRequest, headers: dict[str, str]) -> PreparedRequest:
        """What `Session.prepare_request` makes of this request, without its per-request
        parsing (http.client still refuses a header value with a line break)."""
        prepared = PreparedRequest()
        prepared.method = request.method
        prepared.url = self._base + requote_uri(request.path)
        prepared.headers = CaseInsensitiveDict(self.session.headers)
        prepared.headers.update(headers)
        body = None if request.encoded is None else request.encoded.encode("utf-8")
        if body is not None:
            prepared.headers["Content-Length"] = str(len(body))
        elif request.method not in ("GET", "HEAD"):
            prepared.headers["Content-Length"] = "0"
        prepared.body = body
        prepared.hooks = default_hooks()
        return prepared

    def probe(self) -> Outcome:
        """The account endpoint: a cheap authenticated check for `relay check`."""
        return self.send(ApiRequest("GET", "/api/v1/account"))

    def read(self, path: str) -> tuple[Outcome, Any]:
        """GET `path`: the outcome, and the answer's JSON when it was a 2xx (else None)."""
        started = time.monotonic()
        try:
            response = self.session.get(
                self.base_url + path, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return _transient(exc, "could not reach the Commerce API", started), None
        outcome = classify(
            "GET",
            response.status_code,
            response.headers,
            response.text,
            time.monotonic() - started,
        )
        if not outcome.ok:
            return outcome, None
        try:
            return outcome, response.json()
        except ValueError:
            return outcome, None


def _transient(exc: Exception, what: str, started: float) -> Outcome:
    """A failure on the way (no answer, or half of one): worth sending again later. The
    exception's own text is left out: it may quote the URL."""
    return Outcome(
        ok=False,
        transient=True,
        error=f"{type(exc).__name__}: {what}",
        duration=time.monotonic() - started,
    )


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
