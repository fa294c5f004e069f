"""WooCommerce's store client (mappers/woocommerce/store.py) against the fake store, a real
HTTP(S) server: authentication, paging through a bulk edit, and the engine's paced session
(relay/sync/session.py) under the store's refusals."""

from __future__ import annotations

import logging
import subprocess
import time

import pytest

from mappers.woocommerce.store import WooStore
from relay.settings import StoreConfig
from relay.store_api import Phase
from relay.sync.session import PacedSession
from tests.fakestore import KEY, SECRET, FakeStore


def client_for(store: FakeStore, secret: str = SECRET) -> WooStore:
    config = StoreConfig("woocommerce", store.url, {"consumer_key": KEY, "consumer_secret": secret})
    session = PacedSession(1000, first_delay=0.05, server_error_delay=0.01)
    return WooStore(config, session)


def walk(client: WooStore, phase: Phase) -> list:
    items, cursor = [], None
    while True:
        page = client.fetch(phase, cursor)
        items.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            return items


@pytest.fixture
def tls(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_https_uses_basic_auth_and_falls_back_to_the_query_when_the_server_strips_it(
    tls, monkeypatch, caplog
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls[0])  # trust the test's own certificate
    store = FakeStore(products=5, customers=3, orders=3, tls=tls).start()
    try:
        client = client_for(store)
        assert len(walk(client, Phase("customers", "customers"))) == 3
        assert {r.auth for r in store.requests} == {"basic"}

        store.strip_authorization = True  # Apache with CGI: "Consumer key is missing"
        caplog.set_level(logging.DEBUG)
        store.requests.clear()
        assert len(walk(client_for(store), Phase("customers", "customers"))) == 3
        assert [r.auth for r in store.requests][-1] == "query"
        assert SECRET not in caplog.text  # never a URL with the secret in a log
    finally:
        store.stop()


def test_plain_http_is_signed_with_oauth_and_a_wrong_secret_is_refused():
    from relay.store_api import StoreAuthError

    store = FakeStore(products=5, customers=3, orders=3).start()
    try:
        assert len(walk(client_for(store), Phase("customers", "customers"))) == 3
        assert {r.auth for r in store.requests} == {"oauth"}
        with pytest.raises(StoreAuthError, match="signature"):
            walk(client_for(store, secret="cs_wrong"), Phase("customers", "customers"))
    finally:
        store.stop()


def test_a_bulk_edit_of_more_than_a_page_in_one_second_is_read_whole_and_once():
    store = FakeStore(products=260, variable_every=0, customers=1, orders=1, tie_storm=230)
    store.start()
    try:
        items = walk(
            client_for(store), Phase("products", "products", {"until": "2999-01-01T00:00:00"})
        )
        ids = [int(item.ref.split()[-1]) for item in items]
        assert sorted(ids) == store.published()  # every one, none twice
        assert all(int(r.query.get("per_page", "0")) <= 100 for r in store.requests)
        # The tie was paged by id inside that second, not by a shifting offset.
        assert any(r.query.get("orderby") == "id" for r in store.requests)
    finally:
        store.stop()


def test_the_session_waits_as_long_as_retry_after_asks_and_then_goes_on():
    store = FakeStore(products=5, customers=3, orders=3).start()
    try:
        store.fail("/customers", status=429, times=1, retry_after="1")
        client = client_for(store)
        began = time.monotonic()
        assert len(walk(client, Phase("customers", "customers"))) == 3
        assert time.monotonic() - began >= 0.9  # a lower bound: a busy machine only adds
        assert [r.status for r in store.requests] == [429, 200]
        assert client.http.rate < 1000  # the pace was halved, and grows back with successes
    finally:
        store.stop()
