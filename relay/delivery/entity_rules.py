"""The relay's rules for one entity, as pure decisions: given what the API has already been
sent for an order, product, checkout or back-in-stock request, should this request go?

    order     placed exactly once, and before fulfilled, cancelled or refunded; never
              backwards (placed < fulfilled < cancelled); a refund only when the cumulative
              refunded amount grows
    product   last write wins by the platform's modified time; an unchanged payload is not
              sent again; once deleted, only a snapshot newer than the deletion recreates it
    delete    once: a product already deleted, with no upsert delivered since, is not
              deleted again (a captured delete replayed after the dedup window); an
              unpublished snapshot's delete carries its time, so it is dropped when older
              than what was sent, and only a newer snapshot recreates the product
    checkout  one per checkoutId and content; never once the same id is an announced order
    once      back-in-stock requests: one per product, variant and email
    subscriber_create
              a subscriber is created once (until the relay forgets it); last write wins
    subscriber
              its update by externalId: last write wins by the platform's modified time,
              and an unchanged content (as created or last updated) is not sent again

The rules run just before each send, on every attempt, under the entity's lock, so a retry
of an older event cannot overwrite a newer one that was delivered meanwhile. State is a flat
dict of strings (a Redis hash); `delivered()` says what to write after a 2xx.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

ORDER_STAGES = {"placed": 1, "fulfilled": 2, "cancelled": 3}
EMPTY: dict[str, str] = {}


@dataclass(frozen=True)
class Guard:
    """What the rules need to know about one request, decided when it is planned."""

    entity: str  # "order:1042", "product:41", "checkout:1046", "once:<digest>", "subscriber:7"
    rule: str  # order | product | delete | checkout | once | subscriber_create | subscriber
    modified: float | None = None  # the platform's modified time, epoch seconds
    status: str | None = None  # order lifecycle status
    refund: int | None = None  # cumulative refunded amount, minor units
    fingerprint: str | None = None  # digest of the payload
    never_paid: bool = False  # a cancelled order that was never paid

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value (all scalars here), which was
        # a tenth of planning's CPU.
        return {
            name: value
            for name in _GUARD_FIELDS
            if (value := getattr(self, name)) not in (None, False)  # and so 0, as before
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Guard:
        return cls(**data)

    @property
    def lock(self) -> str:
        """The lock to hold while deciding and sending. A checkout shares its order's lock:
        deciding "not yet an order" and sending must not interleave with the order's
        announcement in another worker."""
        return self.related or self.entity

    @property
    def related(self) -> str | None:
        """Another entity whose state the rule reads: a checkout looks at its order."""
        if self.rule == "checkout":
            return "order:" + self.entity.split(":", 1)[1]
        return None


_GUARD_FIELDS = tuple(f.name for f in dataclass_fields(Guard))


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str = ""  # why not, for the logs
    announce_first: bool = False  # the order must be announced `placed` before this request


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def epoch(modified_at: str | None) -> float | None:
    """ISO 8601 (with Z or an offset) to epoch seconds; None when absent or unreadable."""
    if not modified_at:
        return None
    try:
        return datetime.fromisoformat(modified_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _older(guard: Guard, state: dict[str, str]) -> bool:
    return (
        guard.modified is not None
        and "modified" in state
        and (guard.modified < float(state["modified"]))
    )


def decide(guard: Guard, state: dict[str, str], related: dict[str, str] = EMPTY) -> Decision:
    if guard.rule == "delete":
        if _older(guard, state):  # unpublished, but a newer snapshot already went
            return Decision(False, "older than what was already sent")
        return Decision(False, "already deleted") if state.get("deleted") else Decision(True)
    if _older(guard, state):
        return Decision(False, "older than what was already sent")
    if state.get("deleted") and _not_newer(guard, state):
        # The newest snapshot sent before the deletion, replayed: the store deleted it since
        # (a genuine restore or edit is newer: WordPress stamps the untrash as a change).
        return Decision(False, "deleted after this snapshot")
    if guard.rule == "order":
        return _decide_order(guard, state)
    if guard.rule == "checkout":
        if related.get("placed") == "1" or related.get("placing") == "1":
            return Decision(False, "the checkout is already an order")
        if state.get("fingerprint") == guard.fingerprint:
            return Decision(False, "checkout unchanged")
        return Decision(True)
    if guard.rule == "product":
        if state.get("fingerprint") == guard.fingerprint:
            return Decision(False, "product unchanged")
        return Decision(True)
    if guard.rule == "once":
        return Decision(False, "already sent") if state.get("sent") else Decision(True)
    if guard.rule == "subscriber_create":
        if state.get("created"):
            return Decision(False, "subscriber already created")
        return Decision(True)
    if guard.rule == "subscriber":
        if state.get("fingerprint") == guard.fingerprint:
            return Decision(False, "subscriber unchanged")
        return Decision(True)
    raise ValueError(f"unknown rule {guard.rule!r}")


def _not_newer(guard: Guard, state: dict[str, str]) -> bool:
    return (
        guard.modified is not None
        and "modified" in state
        and guard.modified <= float(state["modified"])
    )


def _decide_order(guard: Guard, state: dict[str, str]) -> Decision:
    status = guard.status or "placed"
    announced = state.get("placed") == "1"
    if status == "placed":
        return Decision(False, "already placed") if announced else Decision(True)
    if status == "refunded":
        if guard.refund is None:  # the platform did not say how much: announce it once
            if "refunded" in state or state.get("refund_announced"):
                return Decision(False, "refund already announced")
        elif guard.refund <= int(state.get("refunded", 0)):
            return Decision(False, "refunded amount did not grow")
        return Decision(True, announce_first=not announced)
    stage = int(state.get("stage", 0))
    if ORDER_STAGES[status] <= stage:
        return Decision(False, f"order already {_stage_name(stage)}")
    if not announced and status == "cancelled" and guard.never_paid:
        return Decision(False, "cancelled before it was ever placed")
    return Decision(True, announce_first=not announced)


def _stage_name(stage: int) -> str:
    return next(name for name, rank in ORDER_STAGES.items() if rank == stage)


def attempting(guard: Guard, state: dict[str, str]) -> dict[str, str]:
    """Fields to write just before sending: what may have reached the API even if the
    answer never comes back (a timeout). Last write wins counts attempts, so an older
    snapshot arriving later is not sent over one the API may have applied (the attempt's
    own retry still goes: same time, not older). An order being announced already stops
    its checkout."""
    fields: dict[str, str] = {}
    if guard.modified is not None:
        fields["modified"] = repr(max(guard.modified, float(state.get("modified", "-inf"))))
    if guard.rule == "order":
        fields["placing"] = "1"
    return fields


def delivered(guard: Guard, state: dict[str, str]) -> dict[str, str]:
    """Fields to write once the request got a 2xx."""
    fields: dict[str, str] = {}
    if guard.modified is not None:
        fields["modified"] = repr(max(guard.modified, float(state.get("modified", "-inf"))))
    if guard.rule == "order":
        status = guard.status or "placed"
        fields["placed"] = "1"
        if status == "refunded" and guard.refund is None:
            fields["refund_announced"] = "1"
        elif status == "refunded":
            fields["refunded"] = str(max(guard.refund or 0, int(state.get("refunded", 0))))
        else:
            stage = max(ORDER_STAGES[status], int(state.get("stage", 0)))
            fields["stage"] = str(stage)
    elif guard.rule in ("product", "checkout"):
        fields["fingerprint"] = guard.fingerprint or ""
        if guard.rule == "product":
            fields["deleted"] = ""  # it exists again: a later delete goes
    elif guard.rule == "once":
        fields["sent"] = "1"
    elif guard.rule in ("subscriber_create", "subscriber"):
        # A create carries the content too: the update planned with it is then unchanged.
        fields["fingerprint"] = guard.fingerprint or ""
        if guard.rule == "subscriber_create":
            fields["created"] = "1"
    elif guard.rule == "delete":
        fields["fingerprint"] = ""  # gone: a restored product is sent again in full
        fields["deleted"] = "1"
    return fields


def skipped(guard: Guard, decision: Decision, state: dict[str, str]) -> dict[str, str]:
    """Fields to write when a request is not sent because the API already has its content:
    its snapshot is then the newest applied one."""
    # "already deleted": an unpublished snapshot finding the product gone is the newest
    # state too, so a published snapshot older than it does not bring the product back.
    unchanged = ("product unchanged", "checkout unchanged", "subscriber unchanged")
    if decision.reason in (*unchanged, "already deleted") and guard.modified:
        return {"modified": repr(max(guard.modified, float(state.get("modified", "-inf"))))}
    return {}
