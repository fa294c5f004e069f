"""A fake Commerce API: a real HTTP server on loopback that records what it receives and
fails on command (5xx, 429 with Retry-After, slow answers, 4xx).

    api = FakeCommerceApi().start()
    api.fail("/api/v1/orders", status=503, times=2)      # the next two order posts fail
    ...
    api.wait_for(3)                                       # three requests received
    api.requests                                          # what arrived, in order

Every request body is checked against the official SDK's types, strictly
(tests/sdk_oracle.py); what does not conform is listed in `violations`, and the `fake_api`
fixture fails the test that caused it. Answers are shaped as the SDK's response types.

Also runnable alone for manual testing: `python -m tests.fakeapi --port 9100`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests import sdk_oracle

COMPANY_ID = "company-fake"
COMPANY_NAME = "Fake Shop"
# A personal key (`key_type = "personal"`) reaches these; its current selection is the first.
OTHER_COMPANY_ID, OTHER_COMPANY_NAME = "company-other", "Other Shop"
SUCCESS = {
    "/api/v1/orders": (202, {"success": True, "queued": True, "jobId": "job-fake"}),
    "/api/v1/products": (200, {"success": True, "upserted": 1, "backInStockEventsTriggered": 0}),
    "/api/v1/checkouts": (
        200,
        {"success": True, "eventId": "evt-fake", "checkoutId": "c", "subscriberId": "sub-fake"},
    ),
    "/api/v1/back-in-stock": (200, {"success": True, "subscriberId": "sub-fake"}),
    "/api/v1/subscribers": (
        200,
        {
            "success": True,
            "subscriber": {
                "id": "sub-fake",
                "email": "grace@example.com",
                "externalId": "7",
                "status": "active",
                "created": True,
                "skipped": False,
                "updated": False,
            },
        },
    ),
    "/api/v1/subscribers/external": (
        200,
        {
            "success": True,
            "subscriber": {
                "id": "sub-fake",
                "email": "grace@example.com",
                "externalId": "7",
                "status": "active",
            },
        },
    ),
}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Scripted:
    path_prefix: str | None  # None matches every path
    status: int
    match: Callable[[Any], bool] | None = None  # on the request body, when given
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    # With a delay: apply the request when it arrives and only answer late (True), or hold
    # it and apply it at the end of the delay, possibly after newer requests (False).
    apply_first: bool = False


def account_answers(key_type: str, selected: str | None) -> dict[str, tuple[int, Any]]:
    """GET /account and GET /subscribers/me as the SDK shapes them, for a company key (one
    workspace) or a personal key (two; x-company-id selects one, else its current one)."""
    companies = [{"id": COMPANY_ID, "name": COMPANY_NAME, "role": "owner"}]
    if key_type == "personal":
        companies.append({"id": OTHER_COMPANY_ID, "name": OTHER_COMPANY_NAME, "role": "admin"})
    names = {c["id"]: c["name"] for c in companies}
    current = selected if selected in names else COMPANY_ID
    prefix = "seq_user_B" if key_type == "personal" else "seq_live_A"
    return {
        "/api/v1/account": (
            200,
            {
                "success": True,
                "currentCompanyId": current,
                "companies": companies,
                "apiKeyPermissions": {
                    "activeKey": {
                        "id": "key-fake",
                        "name": "relay",
                        "prefix": prefix,
                        "type": key_type,
                    },
                    "preset": "data_ingest_safe",
                },
            },
        ),
        "/api/v1/subscribers/me": (
            200,
            {
                "success": True,
                "account": {
                    "apiKeyType": key_type,
                    "companyId": current,
                    "companyName": names[current],
                },
            },
        ),
    }


class FakeCommerceApi:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        self.api_key = api_key
        # What GET /account and /subscribers/me say the key is: "company" or "personal".
        self.key_type = "company"
        self.requests: list[Received] = []  # everything that arrived, in order
        # What took effect: 2xx answers, once per Idempotency-Key (as an API that honours
        # the header would apply them). A repeat of an applied key counts in `resent`.
        self.applied: list[Received] = []
        self.resent = 0
        self._applied_keys: set[str] = set()
        # Requests whose body or query broke the SDK's contract: (request line, problems).
        self.violations: list[tuple[str, list[str]]] = []
        self.check_contract = True
        # A scenario's fault injector: called for each request without a scripted answer;
        # returns the answer to give instead (an outage, a slow answer...), or None.
        self.fault: Callable[[Received], Scripted | None] | None = None
        # Every answer comes this many seconds after its request (the request takes effect
        # at once): the round trip to an API on another continent. Served concurrently.
        self.latency = 0.0
        # Requests being served right now, the most ever at once, and the most at once for
        # any one entity (an order id, a product id): what a test of concurrency reads.
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_in_flight_per_entity = 0
        self._entities_in_flight: dict[str, int] = {}
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeCommerceApi:
        if self.check_contract:
            sdk_oracle.endpoints()  # read the SDK now (seconds), not during the first request
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- scripting ------------------------------------------------------------------------

    def fail(
        self,
        path_prefix: str | None = None,
        status: int = 503,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        match: Callable[[Any], bool] | None = None,
    ) -> None:
        """The next `times` requests matching `path_prefix` (and `match`, a test on the
        request body) get this answer instead."""
        with self._lock:
            for _ in range(times):
                self._script.append(
                    Scripted(path_prefix, status, match, headers or {}, body, delay)
                )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.applied.clear()
            self._applied_keys.clear()
            self.resent = 0
            self._script.clear()

    def _apply(self, received: Received, status: int) -> None:
        if not 200 <= status < 300:
            return
        with self._lock:
            key = received.header("idempotency-key")
            if key and key in self._applied_keys:
                self.resent += 1
                return
            if key:
                self._applied_keys.add(key)
            self.applied.append(received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` requests arrived (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"fake API got {len(self.requests)} requests, expected {count}"
                    )
                self._arrived.wait(left)
            return list(self.requests)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # --- serving --------------------------------------------------------------------------

    def _next_answer(self, path: str, body: Any) -> Scripted | None:
        with self._lock:
            for i, scripted in enumerate(self._script):
                if scripted.path_prefix is not None and not path.startswith(scripted.path_prefix):
                    continue
                if scripted.match is not None and not scripted.match(body):
                    continue
                del self._script[i]
                return scripted
        return None

    def _enter(self, received: Received) -> list[str]:
        entities = _ids(received.body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            for entity in entities:
                held = self._entities_in_flight.get(entity, 0) + 1
                self._entities_in_flight[entity] = held
                self.max_in_flight_per_entity = max(self.max_in_flight_per_entity, held)
        return entities

    def _leave(self, entities: list[str]) -> None:
        with self._lock:
            self.in_flight -= 1
            for entity in entities:
                self._entities_in_flight[entity] -= 1

    def _record(self, received: Received) -> None:
        problems = self._contract_problems(received)
        with self._arrived:
            self.requests.append(received)
            if problems:
                self.violations.append((f"{received.method} {received.path}", problems))
            self._arrived.notify_all()

    def _contract_problems(self, received: Received) -> list[str]:
        if not self.check_contract or not received.path.startswith(sdk_oracle.API_PREFIX):
            return []
        path, query = sdk_oracle.split(received.path)
        return sdk_oracle.check_request(received.method, path, query, received.body)

    def assert_contract_kept(self) -> None:
        """Fail with every request that broke the SDK's contract (the fixture calls it)."""
        if self.violations:
            lines = [f"{line}: {'; '.join(problems)}" for line, problems in self.violations]
            raise AssertionError(
                "requests that break the Commerce API contract (tests/sdk_oracle.py):\n"
                + "\n".join(lines)
            )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: headers and body written separately with
            # Nagle on cost every keep-alive request a 40 ms delayed-ACK stall.
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def handle(self) -> None:
                # The client gave up or was killed mid-request: part of the tests.
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    super().handle()

            def _introspect(self) -> None:
                """GET /__requests: what arrived, for a benchmark in another process."""
                with api._lock:
                    listed = [
                        {"method": r.method, "path": r.path, "at": r.at, "ids": _ids(r.body)}
                        for r in api.requests
                    ]
                self._answer(200, {"requests": listed, "applied": len(api.applied)})

            def _handle(self) -> None:
                if self.command == "GET" and self.path == "/__requests":
                    self._introspect()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:
                    # The client went away mid-request (a worker SIGKILLed between the
                    # headers and the body): a real server never applies half a request.
                    self.close_connection = True
                    return
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                received = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                entities = api._enter(received)
                try:
                    scripted = api._next_answer(self.path, body)
                    if scripted is None and api.fault is not None:
                        scripted = api.fault(received)
                    delay = scripted.delay if scripted is not None else 0.0
                    apply_first = scripted is not None and scripted.apply_first
                    if delay and not apply_first:
                        time.sleep(delay)
                    api._record(received)
                    if (
                        api.api_key is not None
                        and received.header("authorization") != f"Bearer {api.api_key}"
                    ):
                        self._answer(
                            401,
                            {"success": False, "error": "Invalid API key", "code": "UNAUTHORIZED"},
                        )
                        return
                    if scripted is not None:
                        status, answer, headers = scripted.status, scripted.body, scripted.headers
                    elif self.command == "DELETE":
                        status, answer, headers = 200, {"success": True}, {}
                    else:
                        answers = {
                            **SUCCESS,
                            **account_answers(api.key_type, received.header("x-company-id")),
                        }
                        status, answer = answers.get(
                            self.path.partition("?")[0],
                            (404, {"success": False, "error": "Not found", "code": "NOT_FOUND"}),
                        )
                        headers = {}
                    api._apply(received, status)
                    if delay and apply_first:
                        time.sleep(delay)
                    if api.latency:
                        time.sleep(api.latency)
                    self._answer(status, answer, headers)
                finally:
                    api._leave(entities)

            def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return Handler


def _ids(body: Any) -> list[str]:
    """What a request was about: its orderId/checkoutId, or its products' ids."""
    if not isinstance(body, dict):
        return []
    if "products" in body:
        return [str(p.get("productId")) for p in body["products"]]
    for key in ("orderId", "checkoutId", "productId"):
        if key in body:
            return [str(body[key])]
    return []


class _Server(ThreadingHTTPServer):
    # Many workers connect at once (a benchmark keeps hundreds of requests in flight): a
    # short listen backlog would make some wait a second for a SYN retry.
    request_queue_size = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--no-contract-check",
        action="store_true",
        help="skip the SDK oracle (a benchmark measures the relay, not the fake)",
    )
    args = parser.parse_args()
    api = FakeCommerceApi(port=args.port)
    api.latency = args.latency
    api.check_contract = not args.no_contract_check
    api.start()
    print(f"fake Commerce API on {api.url} (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
