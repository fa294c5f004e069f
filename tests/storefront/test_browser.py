"""The notify-me widget in a real headless browser, on a shop page, against a real `relay run`.

The shop (tests/storefront/shop/) is a WooCommerce variable product page: the variations
form with `data-product_variations`, one variation in stock and one sold out, real jQuery
(the XStatic-jQuery wheel), and a stand-in for WooCommerce's add-to-cart-variation.js that
raises `found_variation` and `reset_data` through jQuery's trigger. It is served from its
own origin (another port), the one RELAY_STOREFRONT_ORIGINS allows, and loads the widget from
the relay. A shopper picks the sold-out colour, mistypes the address, then asks; the fake
Commerce API receives the back-in-stock request with the product, variant and titles.

Needs Debian's `chromium` (Playwright's Python package drives the system browser;
`playwright install` is never run): skipped where it is missing.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import API_KEY, wait_until
from tests.redis_server import free_port
from tests.test_e2e_relay_run import RelayProcess

pytestmark = pytest.mark.e2e

SHOP = Path(__file__).parent / "shop"
SCREENSHOTS = Path(__file__).parents[2] / "docs/storefront"


class Shop:
    """The shop's pages on their own origin; `{{RELAY}}` in a page is the relay's URL."""

    def __init__(self, relay_url: str):
        jquery = pytest.importorskip("xstatic.pkg.jquery", reason="XStatic-jQuery is missing")
        files = {
            "/jquery.js": Path(jquery.BASE_DIR) / "jquery.js",
            "/variation-form.js": SHOP / "variation-form.js",
            "/product/linen-shirt/": SHOP / "variable-product.html",
            "/product/canvas-tote/": SHOP / "simple-product.html",
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = files.get(self.path)
                if path is None:
                    self.send_error(404)
                    return
                body = path.read_bytes().replace(b"{{RELAY}}", relay_url.encode())
                kind = "text/html" if path.suffix == ".html" else "text/javascript"
                self.send_response(200)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Shop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop_and_relay(tmp_path, fake_api) -> Iterator[tuple[Shop, RelayProcess]]:
    relay = RelayProcess(
        tmp_path, RELAY_COMMERCE_API_URL=fake_api.url, RELAY_COMMERCE_API_KEY=API_KEY
    )
    with Shop(relay.url) as shop:
        relay.env["RELAY_STOREFRONT_ORIGINS"] = shop.origin
        relay.start()
        try:
            yield shop, relay
        finally:
            assert relay.stop() == 0, relay.log.read_text()


def keep(locator, name: str, tmp_path: Path) -> None:
    """A screenshot of the widget's state; committed under docs/ when asked to."""
    shot = tmp_path / f"{name}.png"
    locator.screenshot(path=str(shot))
    if os.environ.get("RELAY_UPDATE_SCREENSHOT"):  # opt in: keeps CI's checkout clean
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / f"{name}.png")


def back_in_stock_requests(fake_api) -> list[dict]:
    return [r.body for r in fake_api.requests if r.path == "/api/v1/back-in-stock"]


def test_a_shopper_asks_for_a_sold_out_variation(browser, shop_and_relay, fake_api, tmp_path):
    from playwright.sync_api import expect

    shop, _relay = shop_and_relay
    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.set_default_timeout(15_000)
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    page.goto(f"{shop.origin}/product/linen-shirt/")
    # A cookie of the shop's host (cookies ignore ports: the relay's host too): the widget
    # must not send it.
    page.evaluate("document.cookie = 'shop_session=s3cr3t; path=/'")

    widget = page.locator(".relay-notify-me")
    expect(widget).to_have_count(1)
    expect(widget).to_be_hidden()  # no variation chosen yet

    colour = page.get_by_label("Colour")
    colour.select_option("blue")  # in stock: nothing to ask
    expect(page.locator(".single_variation")).to_contain_text("12 in stock")
    expect(widget).to_be_hidden()

    colour.select_option("sand")  # sold out: found_variation, through jQuery's trigger
    expect(widget).to_be_visible()
    email = widget.get_by_label("Email address")
    expect(email).to_be_visible()
    summary = page.locator(".summary")
    keep(summary, "asking", tmp_path)

    # The server's own check: an address without a domain is answered 400, shown in words.
    email.fill("ann@example")
    widget.get_by_role("button", name="Notify me").click()
    message = widget.get_by_role("status")
    expect(message).to_contain_text("Please enter a valid email address")
    expect(email).to_have_attribute("aria-invalid", "true")
    keep(summary, "error", tmp_path)
    assert back_in_stock_requests(fake_api) == []

    # The keyboard alone: type, press Enter.
    email.fill("ann@example.com")
    with page.expect_request(lambda r: r.url.endswith("/storefront/back-in-stock")) as sent:
        email.press("Enter")
    expect(message).to_contain_text("We will email you when it is back in stock")
    expect(email).to_be_hidden()
    keep(summary, "success", tmp_path)
    post = sent.value
    assert post.method == "POST"
    assert "cookie" not in post.all_headers()
    assert post.all_headers()["origin"] == shop.origin

    [request] = wait_until(
        lambda: back_in_stock_requests(fake_api), timeout=20, what="the back-in-stock request"
    )
    assert request == {
        "productId": "42",
        "variantId": "44",
        "productTitle": "Linen shirt",
        "variantTitle": "Sand",
        "customer": {"email": "ann@example.com"},
    }

    # Following the choice: in stock hides it, the sold-out one again says it is done,
    # WooCommerce's Clear (reset_data) hides it.
    colour.select_option("blue")
    expect(widget).to_be_hidden()
    colour.select_option("sand")
    expect(widget).to_be_visible()
    expect(message).to_contain_text("We will email you")
    page.get_by_role("link", name="Clear").click()
    expect(widget).to_be_hidden()
    assert failures == []
    assert len(back_in_stock_requests(fake_api)) == 1


def test_a_sold_out_simple_product_and_a_relay_out_of_reach(
    browser, shop_and_relay, fake_api, tmp_path
):
    from playwright.sync_api import expect

    shop, _relay = shop_and_relay
    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.set_default_timeout(15_000)
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    page.goto(f"{shop.origin}/product/canvas-tote/")
    widget = page.locator(".relay-notify-me")
    expect(widget).to_be_visible()  # the stock line says out of stock: asked at once

    # The relay went away after the page loaded: the shopper is told to try later.
    page.route("**/storefront/back-in-stock", lambda route: route.abort())
    widget.get_by_label("Email address").fill("bob@example.com")
    widget.get_by_role("button", name="Notify me").click()
    message = widget.get_by_role("status")
    expect(message).to_contain_text("Please try again later")
    page.unroute("**/storefront/back-in-stock")
    widget.get_by_role("button", name="Notify me").click()
    expect(message).to_contain_text("We will email you")
    [request] = wait_until(
        lambda: back_in_stock_requests(fake_api), timeout=20, what="the back-in-stock request"
    )
    assert request == {
        "productId": "41",
        "productTitle": "Canvas tote",
        "customer": {"email": "bob@example.com"},
    }

    # A relay that cannot be reached at all: no widget, and the shop's page is untouched.
    with Shop(f"http://127.0.0.1:{free_port()}") as unreachable:
        page.goto(f"{unreachable.origin}/product/canvas-tote/")
        expect(page.locator(".stock.out-of-stock")).to_be_visible()
        page.wait_for_load_state("load")
        expect(page.locator(".relay-notify-me")).to_have_count(0)
    assert failures == []
