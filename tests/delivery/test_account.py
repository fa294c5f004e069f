"""Which workspace the API key writes to (relay/delivery/account.py), asked of the real fake
API, kept in Redis for the probes and the admin page (relay/workspace.py)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from rq.serializers import JSONSerializer

from relay import workspace
from relay.delivery import context as worker_context
from relay.delivery.account import CHECK_LOCK, REFRESH_SECONDS, decide, refresh_if_stale
from relay.delivery.worker import RelayWorker
from relay.event_queue import make_queue
from tests.conftest import WorkerHarness, wait_until
from tests.runtime.test_metrics import StandaloneWorker


def account_reads(fake_api) -> list[str]:
    return [r.path for r in fake_api.requests if r.method == "GET"]


def test_issue13_a_worker_asks_at_start_then_hourly_and_keeps_the_answer(settings, redis, fake_api):
    """Issue 13: /readyz and the admin page show the workspace without calling the API on
    every probe: a worker's maintenance pass (at start, then hourly, one worker at a time)
    asks and keeps the answer in Redis."""
    harness = WorkerHarness(settings, redis)
    worker_context.install(harness.context)
    try:
        worker = RelayWorker(
            [make_queue(redis)], connection=redis, serializer=JSONSerializer, name="t-1"
        )
        worker.run_maintenance_tasks()  # what RQ does when the worker starts
    finally:
        worker_context.install(None)
    assert account_reads(fake_api) == ["/api/v1/subscribers/me", "/api/v1/account"]
    kept = workspace.load(redis)
    assert (kept.company_id, kept.company_name, kept.key_type) == (
        "company-fake",
        "Fake Shop",
        "company",
    )
    assert kept.problem == "" and kept.checked_for(settings)

    redis.delete(CHECK_LOCK)
    assert not refresh_if_stale(settings, redis)  # fresh: nobody asks again
    assert refresh_if_stale(settings, redis, now=kept.checked_at + REFRESH_SECONDS + 1)
    assert len(account_reads(fake_api)) == 4

    # Another company id (a restart with a new setting) is asked about at once.
    redis.delete(CHECK_LOCK)
    other = replace(settings, commerce_company_id="company-fake")
    assert refresh_if_stale(other, redis)
    assert workspace.load(redis).selected_by == "RELAY_COMMERCE_COMPANY_ID"


def test_issue13_a_personal_key_without_a_company_id_is_a_problem(settings, redis, fake_api):
    fake_api.key_type = "personal"
    assert refresh_if_stale(settings, redis)
    kept = workspace.load(redis)
    assert kept.key_type == "personal"
    assert kept.company_id == "company-fake"  # where the data would land now, by chance
    assert kept.problem.startswith("the API key is a personal key and RELAY_COMMERCE_COMPANY_ID")


def test_issue13_an_api_that_cannot_be_asked_keeps_the_last_answer(settings, redis, fake_api):
    assert refresh_if_stale(settings, redis)
    first = workspace.load(redis)
    fake_api.fail(None, status=503, times=2)
    redis.delete(CHECK_LOCK)
    assert refresh_if_stale(settings, redis, now=first.checked_at + REFRESH_SECONDS + 1)
    kept = workspace.load(redis)
    assert (kept.company_name, kept.checked_at) == ("Fake Shop", first.checked_at)
    assert kept.error == "HTTP 503"


def test_sandbox_never_asks(settings, redis, fake_api):
    assert not refresh_if_stale(replace(settings, commerce_api_key=None), redis)
    assert fake_api.requests == []


def test_decide_reads_both_shapes_and_a_key_bound_elsewhere():
    me = {"account": {"apiKeyType": "company", "companyId": "c1", "companyName": "One"}}
    account = {"currentCompanyId": "c1", "companies": [{"id": "c1", "name": "One"}]}
    assert decide(me, account, None).label() == "One (c1)"
    # /account alone (the other read failed): the key type from activeKey.
    only = {**account, "apiKeyPermissions": {"activeKey": {"type": "personal"}}}
    assert decide(None, only, None).problem.startswith("the API key is a personal key")
    # A company key and a company id that names another workspace.
    assert "belongs to workspace One (c1)" in decide(me, account, "c2").problem
    # Answers that are not what the SDK says: no crash, nothing known.
    assert decide({"account": "x"}, {"companies": "abc"}, None).label() == "unknown"


@pytest.mark.e2e
def test_a_worker_stopped_while_it_asks_stops(tmp_path, redis_server, redis, fake_api):
    """The check runs in RQ's maintenance pass, where RQ's SIGTERM handler raises
    StopRequested: it must reach RQ, not be taken for a bad answer (the worker would then
    carry on and never stop)."""
    # The first read is answered (and recorded) at once, the second held back: once the
    # first is recorded, the worker waits for the second.
    fake_api.fail("/api/v1/account", status=200, body={"success": True}, delay=20.0)
    process = StandaloneWorker(tmp_path, redis_server.url, fake_api.url).start()
    try:
        wait_until(lambda: fake_api.requests or process.poll() is not None, timeout=30)
        time.sleep(0.5)  # well inside the second read
        assert process.poll() is None
        process.terminate()
        assert process.wait(15) == 0  # not after the 20 s answer: at once
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
