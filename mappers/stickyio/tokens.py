"""Reading the token values of a Sticky.io postback (shared by intake and the mapper).

Sticky.io replaces each `{token}` of the postback URL with the order's value and sends an
empty value for a token the order lacks. A token it does not know stays as typed
(`{campaign_id}`), so a literal placeholder counts as empty too. Values arrive as strings
(query string, form) or as JSON scalars; every reader here returns text or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.mapping import id_text

_UNREPLACED = re.compile(r"\{\w+\}")
_TRUE = frozenset({"1", "true", "yes"})

Fields = Mapping[str, Any]


def text(fields: Fields, name: str) -> str | None:
    """The stripped value, or None when it is missing, empty or an unreplaced token."""
    raw = fields.get(name)
    if raw is None:
        return None
    value = str(raw).strip()
    if not value or _UNREPLACED.fullmatch(value):
        return None
    return value


def identifier(fields: Fields, name: str) -> str | None:
    """An id token; Sticky.io writes 0 for "none" (a prospect's customer_id, for example)."""
    value = text(fields, name)
    return None if value == "0" else value


def id_token(fields: Fields, name: str) -> str | None:
    """`identifier` for the mapper: an object, a list, a boolean or a float (a JSON body's
    value) is no id, and a MappingError rather than its text."""
    id_text(fields.get(name), name)
    return identifier(fields, name)


def flag(fields: Fields, name: str) -> bool:
    """A 1/0 token (`ischargeback`, `is_test_cc`); JSON true counts as 1."""
    value = text(fields, name)
    return value is not None and value.lower() in _TRUE
