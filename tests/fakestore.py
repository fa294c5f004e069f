"""A fake WooCommerce store: a real HTTP server speaking enough of /wp-json/wc/v3 for sync.

Seeded with a generated store (simple and variable products with their variations,
registered customers of several roles, guest and registered orders), built from the
mapper's fixtures so that every row has the real resource's shape. What it does as
WooCommerce does (store-apis.md §1):

- `per_page` 1..100 (default 10; more: 400 rest_invalid_param), `page`, `X-WP-Total`,
  `X-WP-TotalPages` and a `Link` header with `prev`/`next` only;
- `orderby` modified/date/id (+ registered_date for customers), with the id as tie-break in
  the same direction; `order` (default desc);
- `modified_after`/`modified_before` strict, at one-second resolution, on the `_gmt` column
  with `dates_are_gmt=true` (the tests always send it; without it the site is in UTC, so
  the same); `after` on the creation date; `status`, `customer` (0: guests), `role` (default
  `customer`), `include`, `_fields`, `type`;
- Basic authentication or `consumer_key`/`consumer_secret` in the query; a read-only key
  is refused on writes;
- `/products/{id}` (a variation id answers the products-controller variation),
  `/products/{id}/variations` (the smaller nested shape), `/webhooks` with statuses.

Faults for the tests: `fail(...)` answers a status (with Retry-After) to the next matching
requests; `broken` holds (resource, id) rows that cannot be rendered (a page holding one
answers 500, as woocommerce#37089); `delay` slows every answer. Changes made "in the store"
without a webhook: `touch_*`. `python -m tests.fakestore` serves one for a benchmark.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import copy
import hashlib
import hmac
import json
import math
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "mappers" / "woocommerce" / "fixtures"
API = "/wp-json/wc/v3"
KEY = "ck_test_0123456789"
SECRET = "cs_test_abcdefghij"
# The generated store's history starts three years ago (whatever the store's size, every
# date is in the past: a backfill reads what was modified before it started).
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3 * 365)
HISTORY_SECONDS = 2 * 365 * 86400  # customers and orders spread over two years


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def gmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def now_gmt() -> str:
    return gmt(datetime.now(UTC))


@dataclass
class Fault:
    match: Callable[[str, str, dict[str, str]], bool]  # (method, path, query)
    status: int
    times: int
    headers: dict[str, str]
    body: Any


@dataclass
class Request:
    method: str
    path: str  # without /wp-json/wc/v3
    query: dict[str, str]
    status: int = 0
    auth: str = ""  # how it authenticated: basic, query, oauth (none: "")


class FakeStore:
    def __init__(
        self,
        products: int = 60,
        variable_every: int = 3,  # every third product is variable
        variations: int = 3,
        customers: int = 40,
        orders: int = 80,
        guest_every: int = 2,  # every second order is a guest's
        tie_storm: int = 0,  # products sharing one modified second (a bulk edit)
        seed: int = 15,
        key: str = KEY,
        secret: str = SECRET,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,  # (certificate, key) files: serve HTTPS
    ):
        self.key, self.secret = key, secret
        # As Apache with CGI does: the Authorization header never reaches WordPress.
        self.strip_authorization = False
        self.read_only = False
        self.delay = 0.0
        self.broken: set[tuple[str, int]] = set()  # ("product", 12): cannot be rendered
        self.requests: list[Request] = []
        self.request_count = 0
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._version = 0
        self._cache: dict[Any, tuple[list[dict[str, Any]], list[tuple[str, int]]]] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.variations: dict[int, dict[str, Any]] = {}  # id -> the nested shape + parent_id
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self._next_id = 1
        self._generate(
            products,
            variable_every,
            variations,
            customers,
            orders,
            guest_every,
            tie_storm,
            random.Random(seed),
        )
        self._server = _Server((host, port), self._handler())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    # --- life ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> FakeStore:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the generated store ------------------------------------------------------------------

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _generate(
        self,
        n_products: int,
        variable_every: int,
        n_variations: int,
        n_customers: int,
        n_orders: int,
        guest_every: int,
        tie_storm: int,
        rng: random.Random,
    ) -> None:
        simple = _fixture("product.simple.on-sale")
        variable = _fixture("product.variable")
        nested = _fixture("product.variable.synced")["relay_variations"][0]
        customer = _fixture("customer.created")
        order = _fixture("order.processing.guest")
        storm_at = EPOCH + timedelta(days=200)
        for n in range(n_products):
            is_variable = variable_every and n % variable_every == variable_every - 1
            row = copy.deepcopy(variable if is_variable else simple)
            pid = self._id()
            created = EPOCH + timedelta(minutes=17 * n)
            modified = storm_at if n < tie_storm else created + timedelta(days=rng.randint(0, 300))
            row.update(
                id=pid,
                name=f"Product {pid}",
                slug=f"product-{pid}",
                sku=f"SKU-{pid}",
                permalink=f"https://shop.example.com/product/product-{pid}/",
                date_created=gmt(created),
                date_created_gmt=gmt(created),
                date_modified=gmt(modified),
                date_modified_gmt=gmt(modified),
                status="publish" if n % 29 != 28 else "draft",
            )
            row.pop("relay_variations", None)
            if is_variable:
                ids = []
                for v in range(n_variations):
                    vid = self._id()
                    var = copy.deepcopy(nested)
                    var.update(
                        id=vid,
                        sku=f"SKU-{pid}-{v}",
                        permalink=f"https://shop.example.com/product/product-{pid}/?v={vid}",
                        date_created_gmt=gmt(created),
                        date_modified_gmt=gmt(modified),
                        date_created=gmt(created),
                        date_modified=gmt(modified),
                        parent_id=pid,
                    )
                    self.variations[vid] = var
                    ids.append(vid)
                row["variations"] = ids
            self.products[pid] = row
        product_ids = sorted(self.products)
        customer_ids: list[int] = []
        for n in range(n_customers):
            row = copy.deepcopy(customer)
            cid = self._id()
            created = EPOCH + timedelta(seconds=HISTORY_SECONDS * n // max(n_customers, 1))
            row.update(
                id=cid,
                email=f"customer{cid}@example.com",
                first_name=f"First{cid}",
                last_name=f"Last{cid}",
                username=f"customer{cid}",
                role="customer" if n % 10 != 9 else "subscriber",
                date_created=gmt(created),
                date_created_gmt=gmt(created),
                date_modified=gmt(created),
                date_modified_gmt=gmt(created),
            )
            row["billing"] = {**row["billing"], "email": row["email"]}
            self.customers[cid] = row
            customer_ids.append(cid)
        for n in range(n_orders):
            row = copy.deepcopy(order)
            oid = self._id()
            spread = HISTORY_SECONDS * n // max(n_orders, 1)
            created = EPOCH + timedelta(seconds=spread + rng.randint(0, 3000))
            modified = created + timedelta(minutes=rng.randint(1, 600))
            guest = not customer_ids or (guest_every and n % guest_every == 0)
            buyer = 0 if guest else customer_ids[n % len(customer_ids)]
            # Guests repeat: a tenth of the guests' orders are by a small set of buyers.
            email = (
                f"guest{n % 7}@example.com"
                if guest and n % 10 == 0
                else f"guest{oid}@example.com"
                if guest
                else self.customers[buyer]["email"]
            )
            product_id = product_ids[n % len(product_ids)] if product_ids else 0
            row.update(
                id=oid,
                number=str(oid),
                order_key=f"wc_order_{oid}",
                customer_id=buyer,
                status=["processing", "completed", "on-hold", "pending"][n % 4],
                date_created=gmt(created),
                date_created_gmt=gmt(created),
                date_modified=gmt(modified),
                date_modified_gmt=gmt(modified),
                date_paid_gmt=gmt(created),
                payment_url=f"https://shop.example.com/checkout/order-pay/{oid}/",
            )
            row["billing"] = {
                **row["billing"],
                "email": email,
                "first_name": f"Buyer{oid}",
                "last_name": "Guest" if guest else "Registered",
            }
            for item in row.get("line_items") or []:
                item["product_id"] = product_id
                item["variation_id"] = 0
            self.orders[oid] = row

    # --- changes made in the store (no webhook) ----------------------------------------------

    def _changed(self) -> None:
        self._version += 1
        self._cache.clear()

    def touch_product(self, product_id: int, at: str | None = None, **changes: Any) -> dict:
        with self._lock:
            row = self.products[product_id]
            row.update(changes, date_modified_gmt=at or now_gmt())
            row["date_modified"] = row["date_modified_gmt"]
            self._changed()
            return copy.deepcopy(row)

    def touch_variation(self, variation_id: int, at: str | None = None, **changes: Any) -> dict:
        with self._lock:
            row = self.variations[variation_id]
            row.update(changes, date_modified_gmt=at or now_gmt())
            self._changed()
            return copy.deepcopy(row)

    def touch_order(self, order_id: int, at: str | None = None, **changes: Any) -> dict:
        with self._lock:
            row = self.orders[order_id]
            row.update(changes, date_modified_gmt=at or now_gmt())
            row["date_modified"] = row["date_modified_gmt"]
            self._changed()
            return copy.deepcopy(row)

    def touch_customer(self, customer_id: int, at: str | None = None, **changes: Any) -> dict:
        with self._lock:
            row = self.customers[customer_id]
            row.update(changes, date_modified_gmt=at or now_gmt())
            self._changed()
            return copy.deepcopy(row)

    def add_webhook(self, topic: str, delivery_url: str, status: str = "active") -> dict:
        with self._lock:
            return self._create_webhook(
                {"topic": topic, "delivery_url": delivery_url, "status": status}
            )

    def variable_products(self) -> list[int]:
        return sorted(p for p, row in self.products.items() if row["type"] == "variable")

    def published(self) -> list[int]:
        return sorted(p for p, row in self.products.items() if row["status"] == "publish")

    def guest_emails(self) -> set[str]:
        return {
            o["billing"]["email"].lower() for o in self.orders.values() if o["customer_id"] == 0
        }

    def as_product(self, variation_id: int) -> dict[str, Any]:
        """A variation as the products controller (and a variation's webhook) shows it."""
        var = self.variations[variation_id]
        parent = self.products[var["parent_id"]]
        row = copy.deepcopy(_fixture("product.variation"))
        row.update({k: v for k, v in var.items() if k in row and k != "attributes"})
        row.update(
            id=variation_id,
            type="variation",
            parent_id=parent["id"],
            name=f"{parent['name']} - {variation_id}",
        )
        return row

    # --- faults -----------------------------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int = 500,
        times: int = 1,
        retry_after: str | None = None,
        method: str = "GET",
        when: Callable[[dict[str, str]], bool] | None = None,
    ) -> None:
        """The next `times` requests to a path starting with `path` get `status`."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        body = {"code": "fault", "message": f"injected {status}", "data": {"status": status}}

        def match(m: str, p: str, query: dict[str, str]) -> bool:
            return m == method and p.startswith(path) and (when is None or when(query))

        with self._lock:
            self._faults.append(Fault(match, status, times, headers, body))

    def _fault(self, method: str, path: str, query: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.match(method, path, query):
                    fault.times -= 1
                    return fault
        return None

    def count(self, method: str = "GET", prefix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path.startswith(prefix))

    # --- the API ------------------------------------------------------------------------------

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        auth: str | None,
        body: Any,
        url: str = "",
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) for one request (`url`: without its query)."""
        refused = self._authenticate(method, query, auth, url)
        if refused is not None:
            return refused
        fault = self._fault(method, path, query)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        with self._lock:
            parts = [p for p in path.split("/") if p]
            try:
                return self._route(method, parts, query, body)
            except _Problem as problem:
                return problem.status, problem.body(), {}

    def _authenticate(
        self, method: str, query: dict[str, str], auth: str | None, url: str = ""
    ) -> tuple[int, Any, dict[str, str]] | None:
        key = secret = None
        if "oauth_signature" in query:  # plain HTTP: OAuth 1.0a, one-legged
            problem = self._oauth_problem(method, url, query)
            if problem:
                return 401, _error("woocommerce_rest_authentication_error", problem, 401), {}
            key, secret = self.key, self.secret
        elif auth and auth.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        elif "consumer_key" in query:
            key, secret = query.get("consumer_key"), query.get("consumer_secret")
        if key is None:
            return (
                401,
                _error("woocommerce_rest_authentication_error", "Consumer key is missing.", 401),
                {},
            )
        if key != self.key or secret != self.secret:
            return (
                401,
                _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401),
                {},
            )
        if method != "GET" and self.read_only:
            return (
                401,
                _error(
                    "woocommerce_rest_authentication_error",
                    "The API key provided does not have write permissions.",
                    401,
                ),
                {},
            )
        return None

    def _oauth_problem(self, method: str, url: str, query: dict[str, str]) -> str | None:
        """WooCommerce's check (WC_REST_Authentication::check_oauth_signature), written
        from its PHP: rawurlencode'd, strcmp-sorted parameters, `secret&` as the key."""
        if query.get("oauth_consumer_key") != self.key:
            return "Consumer key is invalid."
        if abs(time.time() - float(query.get("oauth_timestamp") or 0)) > 15 * 60:
            return "Invalid timestamp."
        algorithm = {"HMAC-SHA256": hashlib.sha256, "HMAC-SHA1": hashlib.sha1}.get(
            query.get("oauth_signature_method", "")
        )
        if algorithm is None:
            return "Invalid signature method."
        params = {k: v for k, v in query.items() if k != "oauth_signature"}

        def enc(text: str) -> str:
            return quote(unquote(text), safe="~").replace("%", "%25")

        joined = "%26".join(f"{enc(k)}%3D{enc(v)}" for k, v in sorted(params.items()))
        to_sign = f"{method}&{quote(url, safe='~')}&{joined}"
        digest = hmac.new(f"{self.secret}&".encode(), to_sign.encode(), algorithm).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), query["oauth_signature"]):
            return "Invalid signature - provided signature does not match."
        return None

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        resource = parts[0] if parts else ""
        if (
            method == "GET"
            and len(parts) == 1
            and resource in ("products", "customers", "orders", "webhooks")
        ):
            return self._collection(resource, query)
        if method == "GET" and resource == "products" and len(parts) == 2:
            pid = _int(parts[1])
            if pid in self.products:
                return 200, self._render("product", self.products[pid], query), {}
            if pid in self.variations:
                return 200, self.as_product(pid), {}
            raise _Problem(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        if method == "GET" and resource == "products" and len(parts) == 3:
            pid = _int(parts[1])
            if pid not in self.products or parts[2] != "variations":
                raise _Problem(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            rows = [self.variations[v] for v in self.products[pid].get("variations") or []]
            return self._page("variation", rows, query, ("id",))
        if resource == "webhooks" and method == "POST" and len(parts) == 1:
            return 201, self._create_webhook(body or {}), {}
        if resource == "webhooks" and method in ("PUT", "POST") and len(parts) == 2:
            hook = self.webhooks.get(_int(parts[1]))
            if hook is None:
                raise _Problem(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
            for name in ("status", "secret", "api_version", "delivery_url", "name"):
                if name in (body or {}):
                    hook[name] = body[name]
            hook["date_modified_gmt"] = now_gmt()
            self._changed()
            return 200, self._webhook_view(hook), {}
        raise _Problem(404, "rest_no_route", "No route was found matching the URL and method.")

    def _create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        topic = str(body.get("topic") or "")
        if "." not in topic:
            raise _Problem(400, "rest_invalid_param", "Invalid parameter(s): topic")
        hook = {
            "id": self._id(),
            "name": body.get("name") or f"Webhook {topic}",
            "status": body.get("status") or "active",
            "topic": topic,
            "resource": topic.split(".")[0],
            "event": topic.split(".")[1],
            "delivery_url": body.get("delivery_url") or "",
            "secret": body.get("secret") or "",
            "api_version": body.get("api_version") or "wp_api_v3",
            "date_created_gmt": now_gmt(),
            "date_modified_gmt": now_gmt(),
        }
        self.webhooks[hook["id"]] = hook
        self._changed()
        return self._webhook_view(hook)

    @staticmethod
    def _webhook_view(hook: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in hook.items() if k != "secret"}

    # Parameters that do not change which rows a walk lists, nor their order.
    _NOT_FILTERS = frozenset(
        {
            "page",
            "per_page",
            "modified_after",
            "modified_before",
            "_fields",
            "dates_are_gmt",
            "consumer_key",
            "consumer_secret",
            "context",
        }
    )

    def _collection(self, resource: str, query: dict[str, str]) -> tuple[int, Any, dict]:
        if resource == "customers":  # no date filters at WooCommerce (#31482): ignored
            query = {
                k: v
                for k, v in query.items()
                if k not in ("modified_after", "modified_before", "after", "before")
            }
        orderby = query.get("orderby", "date")
        keys = {
            "modified": ("date_modified_gmt", "id"),
            "date": ("date_created_gmt", "id"),
            "registered_date": ("date_created_gmt", "id"),
            "id": ("id",),
            "include": ("id",),
        }
        if orderby not in keys:
            raise _Problem(400, "rest_invalid_param", "Invalid parameter(s): orderby")
        key = keys[orderby]
        filters = tuple(sorted((k, v) for k, v in query.items() if k not in self._NOT_FILTERS))
        cache_key = (resource, self._version, filters)
        cached = self._cache.get(cache_key)
        if cached is None:  # a walk asks the same filters page after page: sort them once
            rows = self._filtered(resource, query)
            rows.sort(key=lambda r: tuple(r[k] for k in key), reverse=query.get("order") != "asc")
            cached = (rows, [(r["date_modified_gmt"], r["id"]) for r in rows])
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[cache_key] = cached
        rows, modified = cached
        after, before = query.get("modified_after"), query.get("modified_before")
        if (after or before) and key == ("date_modified_gmt", "id") and query.get("order") == "asc":
            lo = bisect.bisect_right(modified, (after[:19], 2**62)) if after else 0
            hi = bisect.bisect_left(modified, (before[:19], -1)) if before else len(rows)
            rows = rows[lo:hi]
        else:  # strict, one-second resolution, on the GMT column (dates_are_gmt=true)
            if after:
                rows = [r for r in rows if r["date_modified_gmt"] > after[:19]]
            if before:
                rows = [r for r in rows if r["date_modified_gmt"] < before[:19]]
        return self._page(resource.rstrip("s"), rows, query, None)

    def _filtered(self, resource: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if resource == "webhooks":
            status = query.get("status", "all")
            return [
                self._webhook_view(h)
                for h in self.webhooks.values()
                if status in ("all", h["status"])
            ]
        if resource == "customers":
            rows = list(self.customers.values())
            role = query.get("role", "customer")
            return rows if role == "all" else [r for r in rows if r["role"] == role]
        rows = list((self.products if resource == "products" else self.orders).values())
        status = query.get("status", "any")
        if status != "any":
            wanted = set(status.split(","))
            rows = [r for r in rows if r["status"] in wanted]
        if "type" in query:
            rows = [r for r in rows if r.get("type") == query["type"]]
        if "customer" in query:
            buyer = _int(query["customer"])
            rows = [r for r in rows if r.get("customer_id") == buyer]
        if "after" in query:
            rows = [r for r in rows if r["date_created_gmt"] > query["after"][:19]]
        if "include" in query:
            ids = {_int(i) for i in query["include"].split(",") if i}
            rows = [r for r in rows if r["id"] in ids]
        return rows

    def _page(
        self,
        kind: str,
        rows: list[dict[str, Any]],
        query: dict[str, str],
        key: tuple[str, ...] | None,
    ) -> tuple[int, Any, dict[str, str]]:
        """One page of rows (sorted by `key` first when given)."""
        per_page = _int(query.get("per_page", "10"))
        page = _int(query.get("page", "1"))
        if per_page is None or not 1 <= per_page <= 100:
            raise _Problem(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        if page is None or page < 1:
            raise _Problem(400, "rest_invalid_param", "Invalid parameter(s): page")
        if key is not None:
            rows = sorted(
                rows, key=lambda r: tuple(r[k] for k in key), reverse=query.get("order") != "asc"
            )
        total = len(rows)
        pages = math.ceil(total / per_page)
        chosen = rows[(page - 1) * per_page : page * per_page]
        rendered = [self._render(kind, row, query) for row in chosen]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = []
        base = {k: v for k, v in query.items() if k not in ("consumer_key", "consumer_secret")}
        if page > 1:
            links.append(f'<{API}/{kind}s?{urlencode({**base, "page": page - 1})}>; rel="prev"')
        if page < pages:
            links.append(f'<{API}/{kind}s?{urlencode({**base, "page": page + 1})}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, rendered, headers

    def _render(self, kind: str, row: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        fields = [f for f in query.get("_fields", "").split(",") if f]
        if (kind, row["id"]) in self.broken and fields != ["id"]:
            raise _Problem(
                500, "internal_server_error", "There has been a critical error on this website."
            )
        if fields:
            return {f: copy.deepcopy(row[f]) for f in fields if f in row}
        return copy.deepcopy(row)

    # --- the server ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    super().handle()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parts.path == "/__stats":
                    self._send(200, {"requests": store.request_count}, {})
                    return
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if not parts.path.startswith(API):
                    self._send(404, _error("rest_no_route", "No route", 404), {})
                    return
                path = parts.path[len(API) :] or "/"
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._send(400, _error("rest_invalid_json", "Invalid JSON body", 400), {})
                    return
                if store.delay:
                    time.sleep(store.delay)
                host = self.headers.get("Host") or "127.0.0.1"
                status, answer, headers = store.answer(
                    self.command,
                    path,
                    query,
                    None if store.strip_authorization else self.headers.get("Authorization"),
                    body,
                    f"{store.scheme}://{host}{parts.path}",
                )
                with store._lock:
                    store.request_count += 1
                    if len(store.requests) < 200_000:
                        shown = {
                            k: v
                            for k, v in query.items()
                            if k not in ("consumer_key", "consumer_secret")
                        }
                        auth = (
                            "oauth"
                            if "oauth_signature" in query
                            else "query"
                            if "consumer_key" in query
                            else "basic"
                            if self.headers.get("Authorization")
                            else ""
                        )
                        store.requests.append(Request(self.command, path, shown, status, auth))
                self._send(status, answer, headers)

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler


class _Problem(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return _error(self.code, self.message, self.status)


def _error(code: str, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status}}


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--variations", type=int, default=3)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=50_000)
    args = parser.parse_args()
    store = FakeStore(
        products=args.products,
        variations=args.variations,
        customers=args.customers,
        orders=args.orders,
        port=args.port,
        tie_storm=150,
    )
    store.start()
    print(f"fake WooCommerce on {store.url} (Ctrl+C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        store.stop()


if __name__ == "__main__":
    main()
