"""Which workspace the API key writes to, asked of the Commerce API.

The SDK: "Account-scoped keys select the target company with the x-company-id header", and
"Workspace-bound integrations should require company so requests cannot silently select
another workspace". So the relay reads the key's type and company from
`GET /api/v1/subscribers/me` (`account {apiKeyType, companyId, companyName}`) and the
companies it reaches from `GET /api/v1/account` (`companies[]`, `currentCompanyId`,
`apiKeyPermissions.activeKey.type`), and decides:

- a company key: its own workspace (RELAY_COMMERCE_COMPANY_ID, if set, must name it);
- RELAY_COMMERCE_COMPANY_ID set: that workspace, which the key must reach;
- a personal key without it: a problem. Data would land in whichever workspace the key
  selects at the time, so `relay check` fails, and /readyz and the admin page say so.

Workers check at start and then hourly (`refresh_if_stale`, from their maintenance pass;
one worker at a time) and `relay check` on every run; the answer is kept in Redis
(relay/workspace.py) for the probes and the admin page, which never call the API.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from redis import Redis

from relay import workspace as records
from relay.delivery.commerce_api import CommerceClient, Outcome
from relay.settings import Settings
from relay.workspace import Workspace, key_digest

log = logging.getLogger("relay.worker")
REFRESH_SECONDS = 3600  # a workspace rarely changes; a restart or a setting change re-checks
CHECK_LOCK = "relay:workspace:checking"
CHECK_LOCK_SECONDS = 60
CHECK_TIMEOUT_SECONDS = 5.0


def _get(data: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _companies(account: Any) -> dict[str, str | None]:
    """id -> name of the companies the key reaches (GET /account `companies[]`)."""
    found: dict[str, str | None] = {}
    for item in _get(account, "companies") or []:
        company_id = _text(_get(item, "id"))
        if company_id:
            found[company_id] = _text(_get(item, "name"))
    return found


def _choices(companies: dict[str, str | None]) -> str:
    listed = [f"{cid} ({name})" if name else cid for cid, name in list(companies.items())[:10]]
    return ", ".join(listed) if listed else "the ids on Sequenzy's Settings > Company page"


def decide(me: Any, account: Any, configured: str | None) -> Workspace:
    """The workspace from the two answers (either may be None: not readable)."""
    key_type = _text(_get(me, "account", "apiKeyType")) or _text(
        _get(account, "apiKeyPermissions", "activeKey", "type")
    )
    companies = _companies(account)
    me_id, me_name = (
        _text(_get(me, "account", "companyId")),
        _text(_get(me, "account", "companyName")),
    )
    if me_id and me_id not in companies:
        companies[me_id] = me_name
    current = _text(_get(account, "currentCompanyId")) or me_id

    if configured:
        problem = ""
        if key_type == "company" and me_id and me_id != configured:
            problem = (
                f"RELAY_COMMERCE_COMPANY_ID is {configured}, but the API key belongs to "
                f"workspace {_label(me_id, companies)}: use that workspace's key, or unset it"
            )
        elif companies and configured not in companies:
            problem = (
                f"RELAY_COMMERCE_COMPANY_ID is {configured}, which the API key does not "
                f"reach; it reaches {_choices(companies)}"
            )
        return Workspace(
            company_id=configured,
            company_name=companies.get(configured),
            key_type=key_type,
            selected_by="RELAY_COMMERCE_COMPANY_ID",
            problem=problem,
        )
    if key_type == "personal":
        return Workspace(
            company_id=current,
            company_name=companies.get(current or ""),
            key_type=key_type,
            selected_by="the key's current selection",
            problem=(
                "the API key is a personal key and RELAY_COMMERCE_COMPANY_ID is unset: data "
                f"would land in whichever workspace the key selects at the time (now "
                f"{_label(current, companies)}); set RELAY_COMMERCE_COMPANY_ID to one of "
                f"{_choices(companies)}, or use a company key"
            ),
        )
    return Workspace(
        company_id=me_id or current,
        company_name=companies.get(me_id or current or ""),
        key_type=key_type,
        selected_by="api key" if key_type == "company" else "the key's current selection",
    )


def _label(company_id: str | None, companies: dict[str, str | None]) -> str:
    if not company_id:
        return "unknown"
    name = companies.get(company_id)
    return f"{name} ({company_id})" if name else company_id


def check(client: CommerceClient, settings: Settings) -> tuple[Outcome, Workspace | None]:
    """Ask the API. The outcome of the first read that failed (or the last one), and the
    workspace when at least one answer came (None: the API could not be asked)."""
    me_outcome, me = client.read("/api/v1/subscribers/me")
    account_outcome, account = client.read("/api/v1/account")
    if not me_outcome.ok and not account_outcome.ok:
        return account_outcome, None
    workspace = replace(
        decide(me, account, settings.commerce_company_id),
        checked_at=time.time(),
        configured=settings.commerce_company_id,
        key=key_digest(settings.commerce_api_key),
    )
    return (me_outcome if not me_outcome.ok else account_outcome), workspace


def check_and_keep(
    client: CommerceClient, settings: Settings, redis: Redis | None
) -> tuple[Outcome, Workspace | None]:
    """`check`, and the answer (or the failed attempt) kept in Redis when there is one."""
    outcome, found = check(client, settings)
    if redis is not None:
        if found is not None:
            records.save(redis, found)
        else:
            records.save_failed_attempt(redis, settings, outcome.error, time.time())
    return outcome, found


def refresh_if_stale(settings: Settings, redis: Redis, now: float | None = None) -> bool:
    """A worker's maintenance pass: ask again when nothing was checked for this
    configuration, or over an hour ago (an API that could not be asked: five minutes).
    One worker at a time. Returns whether it asked."""
    if settings.sandbox:
        return False
    now = time.time() if now is None else now
    kept = records.load(redis)
    if kept is not None and records.same_configuration(kept, settings):
        last = max(kept.checked_at or 0.0, kept.error_at or 0.0)
        if now - last < (REFRESH_SECONDS if not kept.error else 300):
            return False
    if not redis.set(CHECK_LOCK, "1", nx=True, ex=CHECK_LOCK_SECONDS):
        return False
    # Short timeouts: this runs in a worker's maintenance pass, between deliveries.
    client = CommerceClient(
        settings.commerce_api_url,
        settings.commerce_api_key or "",
        min(settings.api_timeout_seconds, CHECK_TIMEOUT_SECONDS),
        settings.commerce_company_id,
    )
    try:
        outcome, found = check_and_keep(client, settings, redis)
    except (AttributeError, KeyError, TypeError, ValueError):
        # A surprise in an answer must not stop the worker's maintenance. Nothing broader:
        # RQ stops a worker (SIGTERM) by raising StopRequested from its signal handler,
        # which may land here, mid-request.
        log.exception("could not check the workspace")
        return True
    if found is None:
        log.warning("could not check the workspace", extra={"error": outcome.error})
    elif found.problem:
        log.error("workspace", extra={"error": found.problem})
    else:
        log.info("workspace", extra={"reason": f"{found.label()}, by {found.selected_by}"})
    return True
