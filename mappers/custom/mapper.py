"""Custom stores post Commerce API objects already normalized: validate and forward.

Body: {"type": "product" | "order" | "checkout" | "back_in_stock",
       "data": <one Commerce API object, or a list of them>}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.events import RawEvent, loads
from relay.mapping import BadRequest, MappingError, Record

TYPES = ("product", "order", "checkout", "back_in_stock")
MAX_ITEMS = 1000  # per webhook; products still go out in API batches of 100


def parse_body(body: bytes) -> tuple[str, list[dict[str, Any]], bool]:
    """The type, the objects, and whether `data` was a single object (not a list); or
    BadRequest (400/422) saying what is wrong."""
    try:
        payload = loads(body)
    except ValueError:
        raise BadRequest("malformed_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("malformed_json", "the body must be a JSON object")
    kind = payload.get("type")
    if kind not in TYPES:
        raise BadRequest(
            "invalid_type",
            f"type must be one of {', '.join(TYPES)}",
            status=422,
            details={"type": [f"expected one of {', '.join(TYPES)}"]},
        )
    data = payload.get("data")
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise BadRequest(
            "invalid_data",
            "data must be an object or a non-empty list of objects",
            status=422,
            details={"data": ["expected an object or a non-empty list of objects"]},
        )
    if len(items) > MAX_ITEMS:
        raise BadRequest(
            "too_many_items",
            f"at most {MAX_ITEMS} objects per webhook",
            status=422,
            details={"data": [f"at most {MAX_ITEMS} objects"]},
        )
    unknown = set(payload) - {"type", "data"}
    if unknown:
        raise BadRequest(
            "invalid_body",
            "unknown top-level fields",
            status=422,
            details={name: ["unknown field"] for name in sorted(unknown)},
        )
    return kind, items, not isinstance(data, list)


def validation_errors(kind: str, items: list[dict[str, Any]], single: bool) -> dict[str, Any]:
    """Field errors keyed like the body: {"data": {...}} or {"data": {"3": {...}}}."""
    from relay.schemas import SCHEMAS  # marshmallow: loaded by the web, not the supervisor

    schema = SCHEMAS[kind]
    errors = {str(i): errs for i, item in enumerate(items) if (errs := schema.validate(item))}
    if not errors:
        return {}
    return {"data": errors["0"] if single else errors}


def map_event(event: RawEvent, options: Mapping[str, str]) -> list[Record]:
    try:
        kind, items, _ = parse_body(event.body)
    except BadRequest as exc:  # it passed at ingest; a failure now means the body changed
        raise MappingError(exc.message) from None
    return [Record(kind, item) for item in items]  # type: ignore[arg-type]
