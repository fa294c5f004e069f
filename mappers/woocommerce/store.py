"""WooCommerce's REST API (/wp-json/wc/v3) for sync: the StoreClient of relay/store_api.py.

Read only (the relay keeps all sync state itself: a sync marker written into the store would
bump every order's date_modified and fire order.updated), except the relay's own webhooks.
Its HTTP is the engine's paced session; everything it must remember is in the cursors.

Authentication: over HTTPS, Basic with the consumer key and secret; a server that strips the
Authorization header answers 401, and the key and secret then go as query parameters (the
session never logs a query). Over plain HTTP WooCommerce accepts only OAuth 1.0a
(one-legged, HMAC-SHA256), signed by wc-api-python's `woocommerce.oauth.OAuth`.

Walks (`fetch`), 100 rows a page (WooCommerce refuses more), every date in GMT:
- products, orders, guest buyers: a keyset on (date_modified_gmt, id),
  `orderby=modified&order=asc` (WooCommerce adds the id as a tie-break), always from page 1
  with `modified_after` = the last row's second minus one second (the filter is strict, at
  one-second resolution); rows up to the cursor are dropped. A full page of one second
  (a bulk edit) is read by page number within that second, ordered by id, then the walk
  goes on after it. No page shifts under it as rows change.
- customers: no date filter exists (woocommerce#31482): by id, page by page
  (`role=all`: the default lists only the `customer` role); a page count that fell
  (customers deleted meanwhile) steps back, and ids already read are dropped.
- a variable product is fetched with GET /products/{id}/variations (every page) and pushed
  as one body with the list in `relay_variations`: the mapper sends its complete variant
  list at once, never a partial one.
- guest buyers (customer_id 0, which /customers never lists) are read from
  `orders?customer=0` with `_fields` (a scan: nothing of it is sent as an order) and kept
  per lower-cased billing email: the newest order's names, the first order's date.

A page the store answers 500 (one record it cannot render fails the whole page:
woocommerce#37089) is read again by id: the page's ids with `_fields=id`, then the rows by
`include`, halving until the record that fails is alone; it is skipped and reported, the
others go on. Its id stays in the cursor so that the next page does not stop on it again.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from relay.settings import StoreConfig
from relay.store_api import (
    Item,
    Page,
    Phase,
    Sighting,
    StoreAuthError,
    StoreError,
    StoreHttp,
    StoreResponse,
    StoreWebhook,
    StoreWriteRefused,
)

API = "/wp-json/wc/v3"
PER_PAGE = 100
WEBHOOK_API_VERSION = "wp_api_v3"  # the bodies the mapper reads
ORDER_STATUSES = "processing,on-hold,completed,cancelled,refunded"  # a backfill's orders
SKIPS_KEPT = 100  # ids of rows that fail, carried in a cursor
# What a guest scan reads of each order: enough to know the buyer.
GUEST_FIELDS = "id,customer_id,billing,date_created_gmt,date_modified_gmt"
KEY_HELP = (
    "a REST API key from WooCommerce > Settings > Advanced > REST API: Read for sync, "
    "Read/Write to repair webhooks"
)


def make_client(config: StoreConfig, http: StoreHttp) -> WooStore:
    return WooStore(config, http)


def _gmt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=UTC)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _shift(text: str, seconds: int) -> str:
    return _text(_gmt(text) + timedelta(seconds=seconds))


def _json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()


class WooStore:
    api_version = WEBHOOK_API_VERSION

    def __init__(self, config: StoreConfig, http: StoreHttp):
        self.base = config.url + API
        self.http = http
        self.key = config.credentials["consumer_key"]
        self.secret = config.credentials["consumer_secret"]
        self.https = config.url.startswith("https://")
        self.query_auth = False  # the server strips Authorization: credentials in the query

    # --- phases -------------------------------------------------------------------------------

    def backfill(self, orders_since: str | None, until: str) -> list[Phase]:
        phases = [
            Phase("products", "products", {"until": until}),
            Phase("customers", "customers", {}),
            Phase("guests", "guest buyers (from orders)", {"until": until}),
        ]
        if orders_since:
            phases.append(Phase("orders", "orders", {"since": orders_since, "until": until}))
        return phases

    def reconcile(self, since: str, until: str, full_scan: bool) -> list[Phase]:
        window = {"since": since, "until": until}
        phases = [
            Phase("products", "products changed", {**window, "all_statuses": True}),
            Phase("orders", "orders changed", {**window, "all_statuses": True}),
            Phase("new_customers", "new customers", window),
        ]
        if full_scan:
            phases.append(Phase("customers", "customers (daily comparison)", {}))
        return phases

    def fetch(self, phase: Phase, cursor: dict[str, Any] | None) -> Page:
        walk = {
            "products": self._products,
            "orders": self._orders,
            "guests": self._guests,
            "customers": self._customers,
            "new_customers": self._new_customers,
        }.get(phase.name)
        if walk is None:
            raise StoreError(f"no such phase {phase.name!r}")
        return walk(phase.params, cursor or {})

    # --- resources ----------------------------------------------------------------------------

    def _window(self, params: dict[str, Any]) -> dict[str, str]:
        out = {}
        if params.get("until"):
            out["modified_before"] = params["until"]
        if params.get("since"):
            out["modified_after"] = params["since"]
        return out

    def _products(self, params: dict[str, Any], cursor: dict[str, Any]) -> Page:
        # A backfill wants what is for sale; a reconcile also what left it (-> a delete).
        query = {} if params.get("all_statuses") else {"status": "publish"}
        query.update(self._window(params))
        page = self._keyset("/products", query, cursor)
        items, skipped = [], list(page.skipped)
        for row in page.rows:
            body = row
            if row.get("type") == "variable":
                try:
                    body = {**row, "relay_variations": self._variations(row["id"])}
                except StoreError as exc:
                    skipped.append(f"product {row['id']} (its variations: {exc})")
                    continue
            items.append(self._item("product.updated", body, f"product {row['id']}"))
        return page.page(items, skipped)

    def _variations(self, product_id: Any) -> list[dict[str, Any]]:
        """Every variation of a product, every page (one list: all or nothing)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self._get(
                f"/products/{product_id}/variations",
                {"per_page": str(PER_PAGE), "page": str(page), "orderby": "id", "order": "asc"},
            )
            if response.status >= 400:
                raise StoreError(self._problem(response))
            rows = response.json()
            out.extend(rows)
            pages = int(response.header("x-wp-totalpages") or 1)
            if len(rows) < PER_PAGE or page >= pages:
                return out
            page += 1

    def _orders(self, params: dict[str, Any], cursor: dict[str, Any]) -> Page:
        query = {} if params.get("all_statuses") else {"status": ORDER_STATUSES}
        if params.get("all_statuses"):
            query.update(self._window(params))
        else:  # a backfill: orders placed since the date, as they are now
            query["after"] = params["since"]
            if params.get("until"):
                query["modified_before"] = params["until"]
        page = self._keyset("/orders", query, cursor)
        items = [self._item("order.updated", row, f"order {row['id']}") for row in page.rows]
        return page.page(items)

    def _guests(self, params: dict[str, Any], cursor: dict[str, Any]) -> Page:
        query = {"customer": "0", "_fields": GUEST_FIELDS, **self._window(params)}
        page = self._keyset("/orders", query, cursor)
        sightings = []
        for row in page.rows:
            billing = row.get("billing") or {}
            email = str(billing.get("email") or "").strip()
            # customer_id 0 only: a store that ignores `customer=0` lists every order.
            if row.get("customer_id") not in (0, "0") or not email or "@" not in email:
                continue
            data = {
                "email": email,
                "first_name": billing.get("first_name") or "",
                "last_name": billing.get("last_name") or "",
            }
            when = str(row.get("date_created_gmt") or row.get("date_modified_gmt") or "")
            sightings.append(Sighting(email.lower(), when, data))
        result = page.page([])
        result.sightings = sightings
        return result

    def from_sightings(
        self, phase: Phase, key: str, newest: dict[str, Any], first_at: str, last_at: str
    ) -> Item:
        body = {**newest, "first_order_gmt": first_at, "last_order_gmt": last_at}
        return Item("guest.seen", _json(body), "a guest buyer", last_at or None)

    def _customers(self, params: dict[str, Any], cursor: dict[str, Any]) -> Page:
        """All customers by id, page by page (no change filter exists)."""
        page_number = int(cursor.get("page", 1))
        last_id = int(cursor.get("id", 0))
        total_before = cursor.get("total")
        query = {"role": "all", "orderby": "id", "order": "asc", "per_page": str(PER_PAGE)}
        rows, skipped, response, count = self._rows(
            "/customers", {**query, "page": str(page_number)}
        )
        total = _int(response.header("x-wp-total"))
        if total is not None and total_before is not None and total < total_before:
            # Customers deleted meanwhile moved later rows onto pages already read: step
            # back (ids already read are dropped below).
            back = max(1, page_number - math.ceil((total_before - total) / PER_PAGE))
            if back < page_number:
                return Page([], {"page": back, "id": last_id, "total": total})
        fresh = [r for r in rows if int(r.get("id") or 0) > last_id]
        items = [self._item("customer.updated", r, f"customer {r['id']}") for r in fresh]
        if count < PER_PAGE:
            next_cursor = None
        else:
            ids = [int(r["id"]) for r in rows] + [int(s.split()[-1]) for s in skipped]
            next_cursor = {"page": page_number + 1, "id": max([last_id, *ids]), "total": total}
        remaining = None if total is None else max(total - (page_number - 1) * PER_PAGE, 0)
        return Page(items, next_cursor, remaining, len(fresh), skipped)

    def _new_customers(self, params: dict[str, Any], cursor: dict[str, Any]) -> Page:
        """Customers registered since the last run, newest first, until an older one."""
        page_number = int(cursor.get("page", 1))
        query = {
            "role": "all",
            "orderby": "registered_date",
            "order": "desc",
            "per_page": str(PER_PAGE),
            "page": str(page_number),
        }
        rows, skipped, _, count = self._rows("/customers", query)
        since = params["since"]
        fresh = [r for r in rows if str(r.get("date_created_gmt") or "") > since]
        items = [self._item("customer.updated", r, f"customer {r['id']}") for r in fresh]
        more = count == PER_PAGE and len(fresh) == len(rows)
        return Page(items, {"page": page_number + 1} if more else None, None, len(rows), skipped)

    # --- one product (variant completion) ------------------------------------------------------

    def product(self, product_id: str) -> Item | None:
        response = self._get(f"/products/{int(product_id)}", {})
        if response.status == 404:
            return None
        if response.status >= 400:
            raise StoreError(self._problem(response))
        row = response.json()
        if row.get("type") == "variation" and row.get("parent_id"):
            return self.product(str(row["parent_id"]))
        if row.get("type") == "variable":
            row = {**row, "relay_variations": self._variations(row["id"])}
        return self._item("product.updated", row, f"product {row['id']}")

    # --- webhooks -----------------------------------------------------------------------------

    def webhooks(self) -> list[StoreWebhook]:
        out: list[StoreWebhook] = []
        page = 1
        while True:
            response = self._get(
                "/webhooks", {"per_page": str(PER_PAGE), "page": str(page), "status": "all"}
            )
            if response.status >= 400:
                raise StoreError(self._problem(response))
            rows = response.json()
            out.extend(_webhook(row) for row in rows)
            if len(rows) < PER_PAGE:
                return out
            page += 1

    def create_webhook(self, topic: str, delivery_url: str, secret: str) -> StoreWebhook:
        body = {
            "name": f"Relay: {topic}",
            "topic": topic,
            "delivery_url": delivery_url,
            "secret": secret,
            "status": "active",
            "api_version": WEBHOOK_API_VERSION,
        }
        return _webhook(self._write("POST", "/webhooks", body))

    def update_webhook(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        secret: str | None = None,
        api_version: str | None = None,
    ) -> StoreWebhook:
        body = {"status": status, "secret": secret, "api_version": api_version}
        changes = {k: v for k, v in body.items() if v is not None}
        return _webhook(self._write("PUT", f"/webhooks/{int(webhook_id)}", changes))

    def _write(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send(method, path, {}, body, server_errors=1)
        if response.status >= 400:
            raise StoreError(self._problem(response))
        return response.json()

    # --- paging -------------------------------------------------------------------------------

    def _keyset(self, path: str, query: dict[str, str], cursor: dict[str, Any]) -> _Rows:
        lo, last_id = cursor.get("lo"), int(cursor.get("id", 0))
        tie = cursor.get("tie")  # a page number within the second `lo`
        skips = [int(s) for s in cursor.get("skip", [])]
        params = {
            **query,
            "orderby": "modified",
            "order": "asc",
            "dates_are_gmt": "true",
            "per_page": str(PER_PAGE),
            "page": "1",
        }
        if tie:
            params.update(
                orderby="id",
                modified_after=_shift(lo, -1),
                modified_before=min(_shift(lo, 1), params.get("modified_before") or "9999"),
                page=str(tie),
            )
        elif lo:
            after = lo if cursor.get("past") else _shift(lo, -1)
            params["modified_after"] = max(after, params.get("modified_after") or "")
        rows, skipped, response, count = self._rows(path, params, skips)
        remaining = None if tie else _int(response.header("x-wp-total"))
        full = count >= PER_PAGE
        keep_skips = (skips + [int(s.split()[-1]) for s in skipped])[-SKIPS_KEPT:]

        def key(row: dict[str, Any]) -> tuple[str, int]:
            return (str(row.get("date_modified_gmt") or ""), int(row.get("id") or 0))

        if tie:
            fresh = [r for r in rows if int(r["id"]) > last_id]
            if not full:  # the second is read: go on after it
                top = max([last_id, *(int(r["id"]) for r in rows)])
                nxt = {"lo": lo, "id": top, "past": True, "skip": keep_skips}
            else:
                nxt = {"lo": lo, "id": last_id, "tie": int(tie) + 1, "skip": keep_skips}
                if fresh:
                    nxt["id"] = max(int(r["id"]) for r in fresh)
            return _Rows(fresh, skipped, nxt, remaining)
        position = (lo or "", last_id if not cursor.get("past") else 2**62)
        fresh = [r for r in rows if key(r) > position]
        if not full:
            return _Rows(fresh, skipped, None, remaining)
        if not fresh:
            # A whole page within one second, all read: page through that second by id.
            second = key(rows[-1])[0] if rows else lo
            tied = {"lo": second, "id": last_id, "tie": 1, "skip": keep_skips}
            return _Rows([], skipped, tied, remaining)
        top = key(fresh[-1])
        return _Rows(fresh, skipped, {"lo": top[0], "id": top[1], "skip": keep_skips}, remaining)

    def _rows(
        self, path: str, params: dict[str, str], skips: list[int] | None = None
    ) -> tuple[list[dict[str, Any]], list[str], StoreResponse, int]:
        """A page's rows, the refs of rows that could not be read (a 500, bisected), the
        response whose headers count the walk, and how many rows the page had."""
        response = self._get(path, params)
        if response.status < 400:
            rows = response.json()
            return rows, [], response, len(rows)
        if response.status < 500:
            raise StoreError(self._problem(response))
        # One record the store cannot render fails the page: read the page again by id.
        ids_response = self._get(path, {**params, "_fields": "id"}, server_errors=1)
        if ids_response.status >= 400:
            raise StoreError(
                f"{path} answered {response.status} for a page, and {ids_response.status} for "
                "its ids alone: the run cannot go past it"
            )
        ids = [int(row["id"]) for row in ids_response.json()]
        known_bad = set(skips or [])
        keep = {k: v for k, v in params.items() if k in ("status", "role", "customer", "_fields")}
        rows, bad = self._bisect(path, keep, [i for i in ids if i not in known_bad])
        order = {i: n for n, i in enumerate(ids)}
        rows.sort(key=lambda r: order.get(int(r["id"]), 0))
        resource = path.strip("/").split("/")[0].rstrip("s")
        return rows, [f"{resource} {i}" for i in bad], ids_response, len(ids)

    def _bisect(
        self, path: str, keep: dict[str, str], ids: list[int]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        if not ids:
            return [], []
        params = {**keep, "include": ",".join(map(str, ids)), "per_page": str(len(ids))}
        response = self._get(path, params, server_errors=0)
        if response.status < 400:
            return response.json(), []
        if response.status < 500:
            raise StoreError(self._problem(response))
        if len(ids) == 1:
            return [], ids
        half = len(ids) // 2
        left_rows, left_bad = self._bisect(path, keep, ids[:half])
        right_rows, right_bad = self._bisect(path, keep, ids[half:])
        return left_rows + right_rows, left_bad + right_bad

    # --- transport ----------------------------------------------------------------------------

    def _item(self, topic: str, row: dict[str, Any], ref: str) -> Item:
        return Item(topic, _json(row), ref, row.get("date_modified_gmt"))

    def _get(self, path: str, params: dict[str, str], server_errors: int = 2) -> StoreResponse:
        return self._send("GET", path, params, None, server_errors)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: Any,
        server_errors: int = 2,
    ) -> StoreResponse:
        response = self._once(method, path, params, body, server_errors)
        if response.status in (401, 403) and self.https and not self.query_auth:
            # Some servers (Apache with CGI) strip the Authorization header: WooCommerce's
            # documented way around it is the key and secret as query parameters.
            self.query_auth = True
            retried = self._once(method, path, params, body, server_errors)
            if retried.status not in (401, 403):
                return retried
            self.query_auth = False
            response = retried
        if response.status in (401, 403):
            problem = self._problem(response)
            if method != "GET" and "write" in problem.lower():
                raise StoreWriteRefused(problem)
            raise StoreAuthError(problem)
        return response

    def _once(
        self, method: str, path: str, params: dict[str, str], body: Any, server_errors: int
    ) -> StoreResponse:
        url = self.base + path
        headers: dict[str, str] = {}
        query: dict[str, str] | None = dict(params)
        if self.https:
            if self.query_auth:
                query = {**params, "consumer_key": self.key, "consumer_secret": self.secret}
            else:
                token = base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
        else:
            from woocommerce.oauth import OAuth  # wc-api-python's signer

            signed = f"{url}?{urlencode(params)}" if params else url
            url = OAuth(signed, self.key, self.secret, version="v3", method=method).get_oauth_url()
            query = None
        return self.http.request(
            method, url, params=query, headers=headers, json=body, server_errors=server_errors
        )

    @staticmethod
    def _problem(response: StoreResponse) -> str:
        """One line from WooCommerce's error body ({"code", "message", "data"}), bounded."""
        try:
            body = response.json()
        except StoreError:
            body = None
        if isinstance(body, dict) and body.get("code"):
            return f"{response.status} {body['code']}: {str(body.get('message', ''))[:200]}"
        if response.status == 404:
            return "404: no /wp-json/wc/v3 there (WooCommerce installed, pretty permalinks on?)"
        return f"the store answered {response.status}"


class _Rows:
    """A keyset page: fresh rows, refs skipped, the next cursor, what the store says is left."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        skipped: list[str],
        cursor: dict[str, Any] | None,
        remaining: int | None,
    ):
        self.rows, self.skipped, self.cursor, self.remaining = rows, skipped, cursor, remaining

    def page(self, items: list[Item], skipped: list[str] | None = None) -> Page:
        return Page(
            items,
            self.cursor,
            self.remaining,
            len(self.rows),
            self.skipped if skipped is None else skipped,
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _webhook(row: Mapping[str, Any]) -> StoreWebhook:
    return StoreWebhook(
        id=str(row.get("id")),
        topic=str(row.get("topic") or ""),
        status=str(row.get("status") or ""),
        delivery_url=str(row.get("delivery_url") or ""),
        name=str(row.get("name") or ""),
        api_version=str(row.get("api_version") or ""),
    )
