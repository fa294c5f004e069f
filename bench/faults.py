"""Fault injection: the real relay (gunicorn, workers, redis-server) under faults, thousands
of WooCommerce webhooks with duplicates and reordering, and a check of what the fake
Commerce API ended up applying against what should have arrived.

    python -m bench.faults                          # every scenario
    python -m bench.faults --scenario worker-sigkill --orders 100

One line per scenario:
    sent      webhooks the relay answered 2xx (duplicates included)
    expected  effects that must reach the API (placed, fulfilled, the final refund, the
              newest product price, the newest abandoned cart...)
    delivered of those, how many did
    duplicates  an effect applied twice (two different requests doing the same thing)
    out of order  an effect applied after one it must not follow (fulfilled before placed,
              an older price after a newer one, a checkout after its order...)
    lost      expected effects that never arrived
    resent    requests repeated after the relay could not know whether they had arrived (a
              worker killed mid-request, a timeout after the API applied it): with the same
              Idempotency-Key, applied once by the fake API as an API honouring the header
              would; or a product snapshot upserted again in a differently composed batch,
              which changes nothing (an upsert of identical content)

The expectations come from the generated history, not from the relay's code.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from relay.inbox import Inbox
from tests.fakeapi import FakeCommerceApi, Received, Scripted
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "mappers" / "woocommerce" / "fixtures"
SECRET = "faults-woo-secret"
API_KEY = "faults-api-key"
BASE_TIME = 1_700_000_000


# --- the history: what happened in the store --------------------------------------------


@dataclass
class Webhook:
    topic: str
    body: bytes
    entity: str  # "order:50001", "product:70001", "checkout:60001"


@dataclass
class Truth:
    """What must reach the API, per entity, derived from the history alone."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> expectations
    checkouts: dict[str, int] = field(default_factory=dict)  # abandoned id -> last version
    products: dict[str, int] = field(default_factory=dict)  # id -> last version


def _stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE_TIME + seconds))


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def build_history(orders: int, products: int, checkouts: int, rng: random.Random):
    order_base = _load("order.processing.guest.json")
    pending_base = _load("order.pending.json")
    product_base = _load("product.simple.on-sale.json")
    events: list[Webhook] = []
    truth = Truth()

    def order_snapshot(order_id: int, t: int, **changes: Any) -> Webhook:
        body = copy.deepcopy(order_base)
        body.update(id=order_id, number=str(order_id), date_modified_gmt=_stamp(t), **changes)
        return Webhook("order.updated", json.dumps(body).encode(), f"order:{order_id}")

    for i in range(orders):
        oid, t = 50000 + i, i * 10
        kind = rng.choices("ABCD", weights=[40, 20, 15, 25])[0]
        truth.orders[str(oid)] = {"kind": kind}
        if kind == "D":  # a checkout first, then paid
            pending = copy.deepcopy(pending_base)
            pending.update(id=oid, number=str(oid), date_modified_gmt=_stamp(t))
            events.append(Webhook("order.created", json.dumps(pending).encode(), f"order:{oid}"))
            events.append(order_snapshot(oid, t + 1, status="processing"))
            continue
        events.append(order_snapshot(oid, t, status="processing"))
        if kind == "A":
            events.append(order_snapshot(oid, t + 1, status="completed"))
        elif kind == "B":
            first = [{"id": 1, "reason": "", "total": "-5.00"}]
            second = [*first, {"id": 2, "reason": "", "total": "-7.50"}]
            events.append(order_snapshot(oid, t + 1, status="completed"))
            events.append(order_snapshot(oid, t + 2, status="completed", refunds=first))
            events.append(order_snapshot(oid, t + 3, status="completed", refunds=second))
            truth.orders[str(oid)]["refund"] = 1250
        elif kind == "C":
            events.append(order_snapshot(oid, t + 1, status="cancelled"))

    for k in range(checkouts):  # abandoned: the cart changes once, never paid
        cid, t = 60000 + k, k * 10
        for version, items in (
            (1, pending_base["line_items"]),
            (2, pending_base["line_items"][:1]),
        ):
            body = copy.deepcopy(pending_base)
            body.update(
                id=cid, number=str(cid), line_items=items, date_modified_gmt=_stamp(t + version)
            )
            events.append(Webhook("order.updated", json.dumps(body).encode(), f"checkout:{cid}"))
        truth.checkouts[str(cid)] = 2

    for j in range(products):  # the price moves 10.00 -> 11.00 -> 12.00
        pid, t = 70000 + j, j * 10
        for version in (1, 2, 3):
            body = copy.deepcopy(product_base)
            body.update(
                id=pid,
                name=f"Mug {pid}",
                price=f"{9 + version}.00",
                on_sale=False,
                date_modified_gmt=_stamp(t + version),
            )
            events.append(Webhook("product.updated", json.dumps(body).encode(), f"product:{pid}"))
        truth.products[str(pid)] = 3
    return events, truth


def shuffle_with_faults(events: list[Webhook], rng: random.Random) -> list[Webhook]:
    """Interleave entities, reorder nearby events, repeat some, and deliver some old
    snapshots only at the very end (after newer ones)."""
    rng.shuffle(events)  # entities interleave; an entity's own events also lose their order
    out: list[Webhook] = []
    late: list[Webhook] = []
    for webhook in events:
        out.append(webhook)
        if rng.random() < 0.10:
            out.insert(rng.randrange(max(len(out) - 30, 0), len(out) + 1), webhook)  # twice
        if rng.random() < 0.05:
            late.append(webhook)  # the same snapshot again, long after newer ones
    return out + late


# --- the relay and its Redis ------------------------------------------------------------


class Relay:
    def __init__(self, workdir: Path, api: FakeCommerceApi, redis_url: str):
        self.port = free_port()
        self.log = workdir / "relay.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(
            RELAY_BIND=f"127.0.0.1:{self.port}",
            RELAY_REDIS_URL=redis_url,
            RELAY_DATA_DIR=str(workdir / "data"),
            RELAY_COMMERCE_API_URL=api.url,
            RELAY_COMMERCE_API_KEY=API_KEY,
            RELAY_WOOCOMMERCE_SECRET=SECRET,
            RELAY_WOOCOMMERCE_CURRENCY="EUR",
            RELAY_WORKERS="2",
            RELAY_API_TIMEOUT_SECONDS="1",
            RELAY_RETRY_BASE_SECONDS="1",
            RELAY_RETRY_MAX_DELAY_SECONDS="4",
            RELAY_RETRY_MAX_ATTEMPTS="40",
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "run"], env=env, cwd=ROOT, stdout=log, stderr=log
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.process.kill()
        raise RuntimeError(f"relay did not start:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and b"worker" in cmdline:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


# --- sending and waiting ----------------------------------------------------------------


def post_all(url: str, webhooks: list[Webhook], threads: int = 8) -> int:
    """Post every webhook as WooCommerce would; on 503 or no answer, try again (a platform
    that retries). Returns how many were answered 2xx."""

    def post(webhook: Webhook) -> bool:
        signature = base64.b64encode(
            hmac.new(SECRET.encode(), webhook.body, hashlib.sha256).digest()
        ).decode()
        headers = {
            "Content-Type": "application/json",
            "X-WC-Webhook-Topic": webhook.topic,
            "X-WC-Webhook-Signature": signature,
        }
        for _ in range(600):
            try:
                answer = requests.post(
                    f"{url}/webhooks/woocommerce", data=webhook.body, headers=headers, timeout=10
                )
            except requests.RequestException:
                time.sleep(0.2)
                continue
            if answer.status_code in (200, 202):
                return True
            if answer.status_code != 503:
                raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text}")
            time.sleep(0.2)
        return False

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(post, webhooks))


def drained(redis: Redis) -> bool:
    try:
        pending = (
            redis.llen("rq:queue:relay")
            + redis.llen("rq:queue:relay:intermediate")
            + redis.zcard("rq:scheduled:relay")
            + redis.zcard("rq:wip:relay")
            + redis.hlen("relay:outbox:products")
            + len(list(redis.scan_iter("relay:batch:*", count=1000)))
            # Stored and not yet handled: in the inbox, waiting alone, or held by a worker
            # (a killed one's until its lease expires and another takes it over).
            + Inbox(redis).waiting()
        )
    except Exception:
        return False
    return pending == 0


def wait_until_quiet(redis: Redis, api: FakeCommerceApi, timeout: float = 300.0) -> None:
    deadline, quiet_since, seen = time.monotonic() + timeout, None, -1
    while time.monotonic() < deadline:
        count = len(api.requests)
        if drained(redis) and count == seen:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2.0:
                return
        else:
            quiet_since = None
        seen = count
        time.sleep(0.25)
    state = [key.decode() for key in redis.scan_iter("relay:batch:*", count=1000)]
    counts = {
        "queued": redis.llen("rq:queue:relay"),
        "intermediate": redis.llen("rq:queue:relay:intermediate"),
        "scheduled": redis.zcard("rq:scheduled:relay"),
        "started": redis.zrange("rq:wip:relay", 0, -1, withscores=True),
        "outbox": redis.hlen("relay:outbox:products"),
        "waiting": Inbox(redis).waiting(),
        "batches": state,
    }
    raise TimeoutError(f"the relay did not finish delivering: {counts}")


# --- the check ----------------------------------------------------------------------------


@dataclass
class Result:
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    lost: int = 0
    resent: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    # The API applied a request it had received before a newer one only after the newer one
    # (it held it past the relay's timeout). Not the relay's order: it sent them in order.
    late_applied: int = 0
    problems: list[str] = field(default_factory=list)  # which entity broke which rule

    def ok(self) -> bool:
        return not (self.duplicates or self.out_of_order or self.lost or self.dead_letters)


def check(truth: Truth, applied: list[Received]) -> Result:
    result = Result()

    def problem(kind: str, message: str, count: int = 1) -> None:
        if count > 0:
            setattr(result, kind, getattr(result, kind) + count)
            result.problems.append(f"{kind}: {message}")

    def expect(delivered: bool, message: str) -> None:
        result.expected += 1
        result.delivered += delivered
        if not delivered:
            problem("lost", message)

    orders: dict[str, list[tuple[str, int]]] = defaultdict(list)
    order_arrivals: dict[str, list[float]] = defaultdict(list)  # when each effect reached it
    checkouts: dict[str, list[int]] = defaultdict(list)
    products: dict[str, list[int]] = defaultdict(list)
    arrived: dict[tuple[str, str, int], float] = {}  # (kind, id, version) -> first arrival
    for request in applied:
        body = request.body
        if request.path == "/api/v1/orders":
            orders[body["orderId"]].append((body["status"], body.get("refundAmountCents", 0)))
            order_arrivals[body["orderId"]].append(request.at)
        elif request.path == "/api/v1/checkouts":
            checkout_id = body["checkoutId"]
            if orders.get(checkout_id):
                if request.at < min(order_arrivals[checkout_id]):
                    result.late_applied += 1  # sent before its order, applied after by the API
                    result.problems.append(f"late (API): checkout {checkout_id} after its order")
                else:
                    problem("out_of_order", f"checkout {checkout_id} after its order")
            version = 2 if len(body.get("items", [])) == 1 else 1
            checkouts[checkout_id].append(version)
            arrived.setdefault(("checkout", checkout_id, version), request.at)
        elif request.path == "/api/v1/products":
            for product in body["products"]:
                version = product["priceCents"] // 100 - 9
                products[product["productId"]].append(version)
                arrived.setdefault(("product", product["productId"], version), request.at)

    required = {
        "A": ["placed", "fulfilled"],
        "B": ["placed", "fulfilled"],
        "C": ["placed", "cancelled"],
        "D": ["placed"],
    }
    for order_id, expectation in truth.orders.items():
        effects = orders.get(order_id, [])
        statuses = [status for status, _ in effects if status != "refunded"]
        for status in required[expectation["kind"]]:
            expect(status in statuses, f"order {order_id} never got {status}")
            problem(
                "duplicates",
                f"order {order_id} {status} x{statuses.count(status)}",
                statuses.count(status) - 1,
            )
        if effects and effects[0][0] != "placed":
            problem("out_of_order", f"order {order_id}: {effects}")
        refunds = [amount for status, amount in effects if status == "refunded"]
        refund_arrivals = [
            at
            for (status, _), at in zip(effects, order_arrivals[order_id], strict=True)
            if status == "refunded"
        ]
        for (a, at_a), (b, at_b) in itertools.pairwise(zip(refunds, refund_arrivals, strict=True)):
            if b > a:
                continue
            if at_b < at_a:  # the smaller was sent first, and applied late by the API
                result.late_applied += 1
                result.problems.append(f"late (API): order {order_id} refunds {refunds}")
            else:
                problem("out_of_order", f"order {order_id} refunds {refunds}")
        if "refund" in expectation:
            expect(expectation["refund"] in refunds, f"order {order_id} refunds {refunds}")
        if expectation["kind"] == "D":
            seen = checkouts.get(order_id, [])
            problem("duplicates", f"checkout {order_id} x{len(seen)}", len(seen) - 1)

    for kind, seen_by_id, last_by_id in (
        ("checkout", checkouts, truth.checkouts),
        ("product", products, truth.products),
    ):
        for entity_id, last in last_by_id.items():
            versions = seen_by_id.get(entity_id, [])
            expect(last in versions, f"{kind} {entity_id} versions {versions}")
            repeats = sum(b == a for a, b in itertools.pairwise(versions))
            if kind == "product":  # the same snapshot again, right after itself: no effect
                result.resent += repeats
                versions = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
            problem(
                "duplicates",
                f"{kind} {entity_id} versions {versions}",
                len(versions) - len(set(versions)),
            )
            for a, b in itertools.pairwise(versions):
                if b >= a:
                    continue
                if arrived[(kind, entity_id, b)] < arrived[(kind, entity_id, a)]:
                    result.late_applied += 1  # sent in order, applied late by the API
                    result.problems.append(f"late (API): {kind} {entity_id} versions {versions}")
                else:
                    problem("out_of_order", f"{kind} {entity_id} versions {versions}")
    return result


# --- scenarios ----------------------------------------------------------------------------


def no_fault(ctx: Scenario) -> None:
    pass


def worker_sigkill(ctx: Scenario) -> None:
    """SIGKILL a worker four times, each time another one, while deliveries run."""
    for n in range(4):
        time.sleep(1.0)
        pids = sorted(ctx.relay.worker_pids())
        if pids:
            os.kill(pids[n % len(pids)], signal.SIGKILL)


def worker_sigkill_slow_api(ctx: Scenario) -> None:
    """The API 100 ms away (many requests in flight per worker) while workers are killed:
    what was in flight is all that may be sent again."""
    ctx.api.latency = 0.1
    worker_sigkill(ctx)
    ctx.api.latency = 0.0


def redis_restart(ctx: Scenario) -> None:
    ctx.api.fault = lambda r: Scripted(None, 200, delay=0.02)  # slow: a queue builds up
    time.sleep(1.5)
    ctx.redis_server.crash()
    time.sleep(2.0)
    ctx.redis_server.start()
    ctx.api.fault = None


def api_down(ctx: Scenario) -> None:
    ctx.api.fault = lambda r: Scripted(None, 503, body={"success": False})
    time.sleep(15)
    ctx.api.fault = None


def api_429(ctx: Scenario) -> None:
    rng = random.Random(429)
    ctx.api.fault = lambda r: (
        Scripted(None, 429, headers={"Retry-After": "2"}) if rng.random() < 0.4 else None
    )
    time.sleep(10)
    ctx.api.fault = None


def api_timeouts(ctx: Scenario) -> None:
    rng = random.Random(504)
    # Answers slower than the relay's 1 s timeout, for requests the API did apply: the
    # relay cannot know, so it sends again (with the same Idempotency-Key).
    ctx.api.fault = lambda r: (
        Scripted(None, 200, delay=1.5, apply_first=True) if rng.random() < 0.25 else None
    )
    time.sleep(10)
    ctx.api.fault = None


def api_applies_late(ctx: Scenario) -> None:
    rng = random.Random(505)
    # Worse: the API holds requests past the relay's timeout and applies them only then,
    # after newer ones the relay sent meanwhile. Only an API-side version check can stop
    # that; the suite counts these apart ("late (API)"), the relay's own order stays checked.
    ctx.api.fault = lambda r: Scripted(None, 200, delay=1.5) if rng.random() < 0.25 else None
    time.sleep(10)
    ctx.api.fault = None


def api_500s(ctx: Scenario) -> None:
    rng = random.Random(500)
    ctx.api.fault = lambda r: Scripted(None, 500) if rng.random() < 0.25 else None
    time.sleep(10)
    ctx.api.fault = None


SCENARIOS = {
    "duplicates-and-reordering": no_fault,
    "worker-sigkill": worker_sigkill,
    "worker-sigkill-slow-api": worker_sigkill_slow_api,
    "redis-restart": redis_restart,
    "api-down": api_down,
    "api-429-retry-after": api_429,
    "api-timeouts": api_timeouts,
    "api-applies-late": api_applies_late,
    "api-500s": api_500s,
}


@dataclass
class Scenario:
    name: str
    api: FakeCommerceApi
    relay: Relay
    redis_server: RedisServer


def run_scenario(name: str, orders: int, products: int, checkouts: int, seed: int) -> Result:
    rng = random.Random(seed)
    events, truth = build_history(orders, products, checkouts, rng)
    webhooks = shuffle_with_faults(events, rng)
    with tempfile.TemporaryDirectory(prefix=f"relay-faults-{name}-") as tmp:
        workdir = Path(tmp)
        keep = Path(tempfile.mkdtemp(prefix=f"relay-faults-{name}-log-"))
        (workdir / "redis").mkdir()
        redis_server = RedisServer(workdir / "redis", appendfsync="always").start()
        api = FakeCommerceApi(api_key=API_KEY).start()
        relay = Relay(workdir, api, redis_server.url)
        ctx = Scenario(name, api, relay, redis_server)
        started = time.monotonic()
        fault = threading.Thread(target=SCENARIOS[name], args=(ctx,))
        try:
            fault.start()
            sent = post_all(relay.url, webhooks)
            fault.join()
            redis = Redis.from_url(redis_server.url)
            wait_until_quiet(redis, api)
            result = check(truth, list(api.applied))
            result.sent, result.resent = sent, result.resent + api.resent
            result.dead_letters = redis.zcard("relay:dlq")
            result.seconds = time.monotonic() - started
            if not result.ok():  # keep the relay's log to find out why
                (keep / "relay.log").write_bytes((workdir / "relay.log").read_bytes())
                result.problems.append(f"relay log kept in {keep}")
        except Exception:
            print((workdir / "relay.log").read_text()[-6000:], file=sys.stderr)
            raise
        finally:
            api.fault = None
            relay.stop()
            api.stop()
            redis_server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fault injection against the real relay.")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--checkouts", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument("--verbose", action="store_true", help="Name each problem found.")
    args = parser.parse_args(argv)
    results = {}
    for name in args.scenario or list(SCENARIOS):
        result = run_scenario(name, args.orders, args.products, args.checkouts, args.seed)
        results[name] = result
        print(
            f"{name:<26} sent {result.sent:>5}  expected {result.expected:>5}  "
            f"delivered {result.delivered:>5}  duplicates {result.duplicates}  "
            f"out of order {result.out_of_order}  lost {result.lost}  "
            f"(resent {result.resent}, late (API) {result.late_applied}, "
            f"dead letters {result.dead_letters}, "
            f"{result.seconds:.0f} s)",
            flush=True,
        )
        if args.verbose:
            for line in result.problems:
                print(f"    {line}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({k: v.__dict__ for k, v in results.items()}, indent=2))
    return 0 if all(r.ok() for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
