"""The `relay` command: dead letters, sandbox, check, mappers, configuration errors."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner
from redis import Redis

from relay.cli import main
from relay.delivery.commerce_api import SandboxClient
from relay.delivery.deadletters import PAGE_SIZE, DeadLetter, DeadLetters
from relay.events import RawEvent
from relay.inbox import INBOX, Entry
from tests.conftest import API_KEY
from tests.redis_server import RedisServer, free_port


@pytest.fixture
def env(redis_server, tmp_path) -> dict:
    return {
        "RELAY_REDIS_URL": redis_server.url,
        "RELAY_DATA_DIR": str(tmp_path / "data"),
        # Long enough not to occur by chance in what the commands print (they redact it).
        "RELAY_WOOCOMMERCE_SECRET": "cli-test-woocommerce-secret",
    }


def invoke(env: dict, *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# Recent enough to be kept: older letters are dropped (RELAY_DLQ_RETENTION_DAYS).
NOW = time.time()


def letter(event_id: str, platform: str = "woocommerce", dead_at: float = NOW):
    event = RawEvent(event_id, platform, "order.created", 1.0, b'{"id": 1}', "application/json")
    return DeadLetter(
        id=event_id,
        platform=platform,
        topic="order.created",
        reason="permanent_error",
        error="HTTP 422: BAD",
        event=event.to_dict(),
        attempts=1,
        dead_at=dead_at,
    )


def test_dlq_list_show_replay_purge(env, redis):
    store = DeadLetters(redis)
    store.add(letter("evt-a", dead_at=NOW - 3))
    store.add(letter("evt-b", dead_at=NOW - 2))
    store.add(letter("evt-c", platform="stickyio", dead_at=NOW - 1))

    listed = invoke(env, "dlq", "list", "--json")
    assert listed.exit_code == 0
    assert [x["id"] for x in json.loads(listed.output)] == ["evt-c", "evt-b", "evt-a"]
    only_woo = json.loads(invoke(env, "dlq", "list", "--json", "--platform", "woocommerce").output)
    assert [x["id"] for x in only_woo] == ["evt-b", "evt-a"]
    table = invoke(env, "dlq", "list").output
    assert "evt-a" in table and "HTTP 422: BAD" in table

    shown = json.loads(invoke(env, "dlq", "show", "evt-a").output)
    assert shown["event"]["body"] == '{"id": 1}'
    assert shown["reason"] == "permanent_error"

    replayed = invoke(env, "dlq", "replay", "evt-a")
    assert replayed.output.strip() == "replayed 1 dead letter"
    [entry] = [Entry.from_json(raw) for raw in redis.lrange(INBOX, 0, -1)]
    assert entry.event["id"] == "evt-a" and entry.mark is None  # mapped again, no dedup
    assert store.get("evt-a") is None

    purged = invoke(env, "dlq", "purge", "--all", "--platform", "stickyio", "--yes")
    assert purged.output.strip() == "purged 1 dead letter"
    assert store.ids() == ["evt-b"]


def test_dlq_unknown_id_fails(env, redis):
    result = CliRunner().invoke(main, ["dlq", "show", "nope"], env=env)
    assert result.exit_code == 1
    assert "no dead letter 'nope'" in result.output


def test_dlq_replay_needs_ids_or_all(env, redis):
    result = CliRunner().invoke(main, ["dlq", "replay"], env=env)
    assert result.exit_code == 2


def test_sandbox_shows_latest_requests(env, redis):
    from relay.delivery.commerce_api import ApiRequest

    SandboxClient(redis).send(ApiRequest("POST", "/api/v1/orders", {"orderId": "9"}, "order:9"))
    result = invoke(env, "sandbox")
    assert "/api/v1/orders" in result.output and "order:9" in result.output
    as_json = json.loads(invoke(env, "sandbox", "--json").output)
    assert as_json[0]["body"] == {"orderId": "9"}


def test_check_in_sandbox(env, redis):
    result = invoke(env, "check")
    assert result.exit_code == 0
    assert "redis          ok" in result.output
    assert "sandbox" in result.output
    assert "woocommerce: enabled" in result.output


def test_check_probes_the_api_key(env, redis, fake_api):
    good = invoke(
        {**env, "RELAY_COMMERCE_API_URL": fake_api.url, "RELAY_COMMERCE_API_KEY": API_KEY}, "check"
    )
    assert good.exit_code == 0, good.output
    assert fake_api.paths() == ["GET /api/v1/subscribers/me", "GET /api/v1/account"]
    bad = CliRunner().invoke(
        main,
        ["check"],
        env={**env, "RELAY_COMMERCE_API_URL": fake_api.url, "RELAY_COMMERCE_API_KEY": "wrong"},
    )
    assert bad.exit_code == 1
    assert "HTTP 401" in bad.output and "API key" in bad.output
    assert "wrong" not in bad.output


def test_issue13_check_says_where_the_data_lands_and_refuses_an_unbound_personal_key(
    env, redis, fake_api
):
    """Issue 13: `relay check` said "ok" for any key that could read /account. A personal
    key reaches several workspaces; without RELAY_COMMERCE_COMPANY_ID every order and
    product goes to whichever one it selects at the time. The check now reads the key's
    type and company (GET /subscribers/me, GET /account), prints the workspace, and fails
    with one line for a personal key with no company id."""
    live = {**env, "RELAY_COMMERCE_API_URL": fake_api.url, "RELAY_COMMERCE_API_KEY": API_KEY}
    company = invoke(live, "check")
    assert company.exit_code == 0, company.output
    assert "workspace      Fake Shop (company-fake): the data lands here (company key)" in (
        company.output
    )

    fake_api.key_type = "personal"
    fake_api.reset()
    personal = CliRunner().invoke(main, ["check"], env=live)
    assert personal.exit_code == 1
    [line] = [row for row in personal.output.splitlines() if "FAILED" in row]
    assert line.startswith(
        "workspace      FAILED: the API key is a personal key and RELAY_COMMERCE_COMPANY_ID "
        "is unset"
    )
    assert "company-fake (Fake Shop), company-other (Other Shop)" in line  # what to set
    assert API_KEY not in personal.output

    fake_api.reset()
    bound = invoke({**live, "RELAY_COMMERCE_COMPANY_ID": "company-other"}, "check")
    assert bound.exit_code == 0, bound.output
    assert (
        "workspace      Other Shop (company-other): the data lands here (personal key, "
        "selected by RELAY_COMMERCE_COMPANY_ID)"
    ) in bound.output
    assert {r.header("x-company-id") for r in fake_api.requests} == {"company-other"}

    unknown = CliRunner().invoke(main, ["check"], env={**live, "RELAY_COMMERCE_COMPANY_ID": "nope"})
    assert unknown.exit_code == 1
    assert "workspace      FAILED: RELAY_COMMERCE_COMPANY_ID is nope, which the API key does " in (
        unknown.output
    )


def test_check_reports_unreachable_redis(env):
    result = CliRunner().invoke(
        main, ["check"], env={**env, "RELAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    assert result.exit_code == 1
    assert "UNREACHABLE" in result.output


def test_configuration_error_is_one_line_and_exit_2(env):
    result = CliRunner().invoke(main, ["check"], env={**env, "RELAY_BIND": "nonsense"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "relay: configuration error: RELAY_BIND: expected HOST:PORT such as 127.0.0.1:8000, "
        "got 'nonsense'"
    ]


def test_mappers_lists_platforms(env):
    result = invoke(env, "mappers")
    assert "woocommerce" in result.output
    assert "http://127.0.0.1:8000/webhooks/woocommerce" in result.output
    assert "enabled" in result.output


def test_f13_dlq_show_redacts_secrets_and_dlq_list_defuses_terminal_escapes(env, redis):
    """Review F13: `relay dlq show` printed a Sticky.io token that the postback echoed (the
    admin page redacts it), and `relay dlq list` wrote an OSC sequence from a payload's id
    (`\\x1b]0;relay pwned\\x07`, quoted in the error) straight to the operator's terminal."""
    token = "stickyio-token-0123456789abcdef"
    env = {**env, "RELAY_STICKYIO_TOKEN": token}
    echoed = RawEvent(
        "evt-token", "stickyio", "order", 1.0, b"", "", query=f"order_id=7&note={token}"
    )
    DeadLetters(redis).add(
        DeadLetter(
            id="evt-token",
            platform="stickyio",
            topic="order",
            reason="mapping_error",
            error=f"bad postback note={token}",
            event=echoed.to_dict(),
        )
    )
    hostile = "\x1b]0;relay pwned\x07\x1b[2J\x1b[31m\x9b1m\x07\u202e"
    DeadLetters(redis).add(letter("evt-escape"))
    escaped = DeadLetters(redis).get("evt-escape")
    escaped.error = f"order {hostile}: currency is missing"
    escaped.topic = f"order.{hostile}"
    DeadLetters(redis).add(escaped)

    shown = invoke(env, "dlq", "show", "evt-token")
    assert shown.exit_code == 0
    assert token not in shown.output
    assert "note=[redacted]" in json.loads(shown.output)["event"]["query"]
    listed = invoke(env, "dlq", "list")
    assert listed.exit_code == 0
    assert token not in listed.output
    assert "evt-escape" in listed.output and "currency is missing" in listed.output
    controls = [c for c in listed.output if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]
    assert controls == []
    assert "\u202e" not in listed.output
    assert "\\x1b]0;relay pwned\\x07" in listed.output  # shown, not acted on


def test_f7_dlq_replay_and_purge_all_page_through_more_letters_than_one_page(env, tmp_path):
    """Review F7: `relay dlq replay/purge --all` loaded every dead letter whole, each with a
    raw body of up to 2 MB. Here Redis refuses to hand out more than a page or so at once."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        redis = Redis.from_url(server.url)
        env = {**env, "RELAY_REDIS_URL": server.url}
        total, body = 2 * PAGE_SIZE + 30, b'{"pad": "' + b"x" * 30_000 + b'"}'

        def fill(platform: str = "woocommerce") -> None:
            for n in range(total):
                event_id = f"evt-{platform}-{n}"
                event = RawEvent(event_id, platform, "order.created", NOW, body, "text/json")
                DeadLetters(redis).add(replace(letter(event_id, platform), event=event.to_dict()))

        server.cap_replies(50 * PAGE_SIZE * 1000)  # 2.5 MB: a page fits, all 130 do not
        fill()
        replayed = invoke(env, "dlq", "replay", "--all")
        assert replayed.output.strip() == f"replayed {total} dead letters"
        assert DeadLetters(redis).count() == 0 and redis.llen(INBOX) == total

        fill()
        fill("stickyio")
        asked = CliRunner().invoke(main, ["dlq", "purge", "--all"], env=env, input="n\n")
        assert f"delete {2 * total} dead letters for good?" in asked.output
        assert DeadLetters(redis).count() == 2 * total  # not confirmed: nothing deleted
        purged = invoke(env, "dlq", "purge", "--all", "--platform", "stickyio", "--yes")
        assert purged.output.strip() == f"purged {total} dead letters"
        assert DeadLetters(redis).count() == total
        assert DeadLetters(redis).count("stickyio") == 0
        purged = invoke(env, "dlq", "purge", "--all", "--yes")
        assert purged.output.strip() == f"purged {total} dead letters"
        assert DeadLetters(redis).count() == DeadLetters(redis).count("woocommerce") == 0
    finally:
        server.stop()


def test_issue13_dlq_list_says_what_each_letter_was_about(env, redis):
    """Issue 13: `relay dlq list` showed id, topic and error: which order a letter belonged
    to took `relay dlq show` on each. Text and --json now show the entity, the masked
    customer and the amount, redacted and escaped like the rest."""
    token = "stickyio-token-0123456789abcdef"
    env = {**env, "RELAY_STICKYIO_TOKEN": token}
    order = {
        "id": 1042,
        "number": "WC-1042",
        "total": "61.38",
        "currency": "EUR",
        "billing": {"email": "grace@example.com"},
    }
    woo = RawEvent("evt-woo", "woocommerce", "order.created", 1.0, json.dumps(order).encode())
    DeadLetters(redis).add(replace(letter("evt-woo"), event=woo.to_dict(), reason="mapping_error"))
    hostile = RawEvent(
        "evt-sticky",
        "stickyio",
        "order",
        1.0,
        b"",
        "",
        query=f"order_id=7\x1b]0;pwned\x07&email=eve@example.com&order_total=5&note={token}"
        f"&customer_id={token}",
    )
    DeadLetters(redis).add(replace(letter("evt-sticky", "stickyio"), event=hostile.to_dict()))

    rows = {row["id"]: row for row in json.loads(invoke(env, "dlq", "list", "--json").output)}
    assert rows["evt-woo"]["about"] == {
        "entity": "order",
        "id": "1042",
        "number": "WC-1042",
        "customer": "g***@example.com",
        "amount": "61.38",
        "currency": "EUR",
        "source": "raw event",
    }
    assert rows["evt-sticky"]["about"]["customer_id"] == "[redacted]"
    table = invoke(env, "dlq", "list").output
    assert "order 1042 #WC-1042 · g***@example.com · 61.38 EUR" in table
    assert "order 7\\x1b]0;pwned\\x07 · e***@example.com · 5" in table
    assert token not in table and "grace@example.com" not in table
    assert [c for c in table if c != "\n" and ord(c) < 0x20] == []


# --- relay sync (a real process against the fake WooCommerce store) ------------------------


def _sync_env(redis_server, fake_store, tmp_path, **extra: str) -> dict:
    import os

    from tests.fakestore import KEY, SECRET

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    env.update(
        RELAY_REDIS_URL=redis_server.url,
        RELAY_DATA_DIR=str(tmp_path / "data"),
        RELAY_WOOCOMMERCE_SECRET="cli-test-woocommerce-secret",
        RELAY_WOOCOMMERCE_STORE_URL=fake_store.url,
        RELAY_WOOCOMMERCE_CONSUMER_KEY=KEY,
        RELAY_WOOCOMMERCE_CONSUMER_SECRET=SECRET,
        RELAY_WOOCOMMERCE_MAX_RPS="1000",
    )
    env.update(extra)
    return env


def _relay(*args: str):
    import sys
    from pathlib import Path

    return [str(Path(sys.executable).with_name("relay")), *args]


@pytest.fixture
def small_store():
    from tests.fakestore import FakeStore

    store = FakeStore(products=30, customers=10, orders=20).start()
    yield store
    store.stop()


def test_sync_with_refused_credentials_says_so_in_one_line_naming_the_settings(
    redis_server, redis, small_store, tmp_path
):
    import subprocess

    env = _sync_env(
        redis_server, small_store, tmp_path, RELAY_WOOCOMMERCE_CONSUMER_SECRET="cs_wrong"
    )
    done = subprocess.run(
        _relay("sync", "woocommerce"), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refused the credentials" in lines[0]
    assert "RELAY_WOOCOMMERCE_CONSUMER_KEY and RELAY_WOOCOMMERCE_CONSUMER_SECRET" in lines[0]
    assert "cs_wrong" not in done.stderr + done.stdout
    assert small_store.count("GET") == 1  # it stopped at the first refusal


def test_sync_dry_run_counts_what_it_would_send_and_sends_nothing(
    redis_server, redis, small_store, tmp_path, settings, fake_api
):
    import subprocess

    from tests.conftest import WorkerHarness

    env = _sync_env(redis_server, small_store, tmp_path)
    done = subprocess.run(
        _relay("sync", "woocommerce", "--dry-run", "--orders-since", "2024-01-01"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    published = len(small_store.published())
    assert f"product {published}" in done.stdout
    assert "nothing was sent" in done.stdout
    # No event, no checkpoint, no job, the store lock released. (An RQ scheduler that an
    # earlier test's killed worker left running may still beat its heartbeat and take its
    # lock here.)
    assert [k for k in redis.keys("*") if not k.startswith(b"rq:scheduler")] == []
    WorkerHarness(settings, redis).run()
    assert fake_api.applied == []


def test_sync_killed_mid_way_resumes_and_pushes_each_record_once(
    redis_server, redis, tmp_path, settings, fake_api
):
    import json as jsonlib
    import signal
    import subprocess
    from collections import Counter

    from relay.sync.checkpoints import Checkpoints
    from tests.conftest import WorkerHarness, wait_until
    from tests.fakestore import FakeStore

    store = FakeStore(products=450, customers=10, orders=10, tie_storm=120).start()
    try:
        store.delay = 0.02  # a page at a time, slow enough to be killed in the middle
        env = _sync_env(redis_server, store, tmp_path)
        first = subprocess.Popen(
            _relay("sync", "woocommerce"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        phase = Checkpoints(redis, "woocommerce", "backfill")
        wait_until(lambda: phase.phase("products").scanned >= 200, timeout=60, what="pages")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = phase.phase("products")
        assert not killed_at.done

        store.delay = 0.0
        again = subprocess.run(
            _relay("sync", "woocommerce"), env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert "resuming" in again.stderr

        events = [jsonlib.loads(raw)["event"] for raw in redis.lrange("relay:inbox", 0, -1)]
        products = Counter(
            jsonlib.loads(e["body"])["id"] for e in events if e["topic"] == "product.updated"
        )
        assert set(products) == set(store.published())
        assert set(products.values()) == {1}  # none pushed twice
        WorkerHarness(settings, redis).run()
        writes = Counter(
            p["productId"]
            for r in fake_api.applied
            if r.path == "/api/v1/products"
            for p in r.body["products"]
        )
        assert set(writes.values()) == {1}
        assert len(writes) == len(store.published())
    finally:
        store.stop()


def test_connect_creates_every_webhook_then_repairs_idempotently(
    redis_server, redis, small_store, tmp_path
):
    import subprocess

    env = _sync_env(redis_server, small_store, tmp_path)
    args = _relay("connect", "woocommerce", "--url", "https://relay.example.com/")
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    hooks = list(small_store.webhooks.values())
    topics = sorted(h["topic"] for h in hooks)
    assert "order.created" in topics and "customer.deleted" not in topics
    assert {h["delivery_url"] for h in hooks} == {"https://relay.example.com/webhooks/woocommerce"}
    assert {h["secret"] for h in hooks} == {"cli-test-woocommerce-secret"}
    assert {h["api_version"] for h in hooks} == {"wp_api_v3"}

    small_store.webhooks[hooks[0]["id"]]["status"] = "disabled"
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert len(small_store.webhooks) == len(hooks)  # none created twice
    assert {h["status"] for h in small_store.webhooks.values()} == {"active"}
    assert "re-enabled" in again.stdout

    small_store.read_only = True
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "Read/Write" in refused.stderr


def test_reconcile_says_what_it_handed_over_and_the_webhooks_state(
    redis_server, redis, small_store, tmp_path
):
    import subprocess

    small_store.add_webhook(
        "order.created", "https://relay.example.com/webhooks/woocommerce", status="disabled"
    )
    env = _sync_env(redis_server, small_store, tmp_path)
    done = subprocess.run(_relay("reconcile"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "woocommerce: done" in done.stdout
    assert "re-enabled" in done.stdout
    assert "no active webhook for" in done.stdout  # the other topics were never created
