"""Which Sequenzy workspace the relay's data lands in, as last checked, kept in Redis.

A worker (relay/delivery/account.py, at start and then hourly) and `relay check` ask the
Commerce API which workspace the API key writes to and store the answer here; `/readyz`
and the admin page only read it, so no probe ever calls the API.

    relay:workspace   JSON: the last check (company id and name, key type, how the
                      workspace was selected, what is wrong, when), and the last failed
                      attempt to ask, if any, since then

A record is only shown for the configuration it was checked with (the company id setting
and a short digest of the API key): after a change it counts as not checked yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from redis import Redis

from relay.settings import Settings

KEY = "relay:workspace"


def key_digest(api_key: str | None) -> str:
    """A short digest telling one API key from another; it cannot give the key back."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Workspace:
    company_id: str | None = None
    company_name: str | None = None
    key_type: str | None = None  # company | personal | None when the API did not say
    # How the workspace is chosen: "api key" (a company key has one), "RELAY_COMMERCE_COMPANY_ID"
    # (sent as x-company-id), or "the key's current selection" (a personal key without it).
    selected_by: str = ""
    problem: str = ""  # why data may not land where it should: `relay check` fails on it
    checked_at: float | None = None  # when the API answered this
    configured: str | None = None  # RELAY_COMMERCE_COMPANY_ID at that check
    key: str = ""  # key_digest of the API key checked
    # The latest attempt to ask failed (the API down): what is above is the last answer.
    error: str = ""
    error_at: float | None = None

    def label(self) -> str:
        """`Fake Shop (company-fake)`, or what is known of it."""
        if self.company_name and self.company_id:
            return f"{self.company_name} ({self.company_id})"
        return self.company_name or self.company_id or "unknown"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Workspace:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def checked_for(self, settings: Settings) -> bool:
        """Answered by the API for this configuration (company id and API key)?"""
        return self.checked_at is not None and same_configuration(self, settings)


def same_configuration(workspace: Workspace, settings: Settings) -> bool:
    """Kept for the company id setting and API key `settings` has."""
    return workspace.configured == settings.commerce_company_id and workspace.key == key_digest(
        settings.commerce_api_key
    )


def load(redis: Redis) -> Workspace | None:
    raw = redis.get(KEY)
    if raw is None:
        return None
    try:
        return Workspace.from_json(raw)
    except (ValueError, TypeError):
        return None


def save(redis: Redis, workspace: Workspace) -> None:
    redis.set(KEY, workspace.to_json())


def save_failed_attempt(redis: Redis, settings: Settings, error: str, at: float) -> None:
    """The API could not be asked: keep the last answer for this configuration (a
    workspace does not change because the API is down) and say the attempt failed."""
    previous = load(redis)
    if previous is not None and previous.checked_for(settings):
        save(redis, replace(previous, error=error, error_at=at))
        return
    save(
        redis,
        Workspace(
            configured=settings.commerce_company_id,
            key=key_digest(settings.commerce_api_key),
            error=error,
            error_at=at,
        ),
    )


def status(settings: Settings, workspace: Workspace | None) -> dict[str, Any]:
    """What /readyz and the admin's JSON API show: where the data lands, as last checked."""
    if settings.sandbox:
        return {"mode": "sandbox", "note": "sandbox mode: nothing is sent to any workspace"}
    if workspace is None or not workspace.checked_for(settings):
        out: dict[str, Any] = {
            "mode": "live",
            "checked_at": None,
            "note": "not checked yet: a worker checks at start, or run `relay check`",
        }
        if workspace is not None and same_configuration(workspace, settings) and workspace.error:
            out["last_attempt_failed"] = {"error": workspace.error, "at": workspace.error_at}
        return out
    out = {
        "mode": "live",
        "id": workspace.company_id,
        "name": workspace.company_name,
        "key_type": workspace.key_type,
        "selected_by": workspace.selected_by,
        "checked_at": workspace.checked_at,
    }
    if workspace.problem:
        out["problem"] = workspace.problem
    if workspace.error:
        out["last_attempt_failed"] = {"error": workspace.error, "at": workspace.error_at}
    return out
