"""The paced session: how the relay talks to a merchant's store (relay/store_api.py StoreHttp).

A store is often a small shared host. The session is polite to it, whatever the client asks:

- **one request at a time** (a lock; across processes the store lock, relay/sync/lock.py),
  and at most `max_rps` requests a second;
- **adaptive backoff**: 429, 502-504, 508 (LiteSpeed's resource limit), Cloudflare's 52x,
  timeouts and connection errors wait and try again, at least as long as `Retry-After`
  asks (seconds or an HTTP date), else 5 s, 10 s, 20 s ... up to 10 minutes, with jitter;
  each of them also halves the pace, which then grows back by a tenth per success (AIMD);
  after `give_up_seconds` of trying, StoreUnavailable;
- a 500 is tried `server_errors` more times (one broken record fails a whole page at
  WooCommerce: the client then bisects), then returned;
- long read timeouts (a big page of orders takes a shared host many seconds), a
  descriptive User-Agent so a merchant can allow it in a WAF;
- **no secret in any log**: only the method, the URL's path and the status are logged, never
  a query string (query-string and OAuth authentication carry credentials there).
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from relay.store_api import StoreResponse, StoreUnavailable

log = logging.getLogger("relay.sync")
# urllib3 logs every request line at DEBUG, query string included: with query-string
# authentication that is the consumer secret. Its debug lines are never wanted here.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
USER_AGENT = (
    "relay-sync/0.1 (commerce relay: reads the catalog, customers and orders for Sequenzy; "
    "one request at a time) python-requests"
)
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
# What a host, a proxy or a CDN answers when it wants the client to slow down or wait.
BACKOFF_STATUSES = frozenset({429, 502, 503, 504, 508, 520, 521, 522, 523, 524, 525, 526, 527})
FIRST_DELAY = 5.0
MAX_DELAY = 600.0
SERVER_ERROR_DELAY = 1.0
GIVE_UP_SECONDS = 30 * 60.0


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C, a worker stopping) while the session waited."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class PacedSession:
    def __init__(
        self,
        max_rps: float,
        *,
        stop: threading.Event | None = None,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        give_up_seconds: float = GIVE_UP_SECONDS,
        server_error_delay: float = SERVER_ERROR_DELAY,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        self.max_rps = max_rps
        self.rate = max_rps  # the current pace: halved by a backoff, grown back by successes
        self.stop = stop or threading.Event()
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.give_up_seconds = give_up_seconds
        self.server_error_delay = server_error_delay
        self.timeout = timeout
        self.clock = clock
        self.rng = rng or random.Random()
        self.requests_sent = 0
        self._next_at = 0.0
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self._session.close()

    # --- the StoreHttp protocol ---------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        server_errors: int = 2,
    ) -> StoreResponse:
        path = urlsplit(url).path  # what is logged: never the query (credentials)
        started = self.clock()
        backoffs = 0
        while True:
            outcome = self._attempt(method, url, params, headers, json)
            if isinstance(outcome, StoreResponse):
                status = outcome.status
                if status == 500 and server_errors > 0:
                    server_errors -= 1
                    log.warning(
                        "the store answered 500; trying again",
                        extra={"method": method, "path": path, "status": status},
                    )
                    self._sleep(self.server_error_delay)
                    continue
                if status not in BACKOFF_STATUSES:
                    self._grow()
                    return outcome
                wanted = retry_after_seconds(outcome.header("retry-after"))
                what = f"{status}"
            else:
                wanted, what = None, outcome  # a timeout or a connection error
            backoffs += 1
            delay = self._backoff(backoffs, wanted)
            if self.clock() + delay - started > self.give_up_seconds:
                raise StoreUnavailable(
                    f"the store did not answer {method} {path} usably for "
                    f"{self.clock() - started:.0f} s ({backoffs} tries; last: {what})"
                )
            log.warning(
                "the store asks to wait; backing off",
                extra={
                    "method": method,
                    "path": path,
                    "status": what,
                    "retry_in": round(delay, 1),
                    "rate": round(self.rate, 3),
                },
            )
            self._sleep(delay)

    # --- pieces ---------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json: Any,
    ) -> StoreResponse | str:
        with self._lock:
            self._pace()
            self.requests_sent += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    headers=dict(headers or {}),
                    json=json,
                    timeout=self.timeout,
                    allow_redirects=method == "GET",
                )
            except requests.Timeout:
                return "timeout"
            except requests.ConnectionError:
                return "connection error"
            return StoreResponse(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.content,
            )

    def _pace(self) -> None:
        now = self.clock()
        if now < self._next_at:
            self._sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1.0 / self.rate

    def _backoff(self, attempt: int, wanted: float | None) -> float:
        self.rate = max(self.rate / 2, self.max_rps / 64)
        nominal = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        delay = nominal * self.rng.uniform(0.8, 1.2)
        if wanted is not None:
            delay = max(delay, wanted) if wanted <= self.max_delay else wanted
        return delay

    def _grow(self) -> None:
        self.rate = min(self.max_rps, self.rate + self.max_rps / 10)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(max(seconds, 0.0)):
            raise Stopped()
