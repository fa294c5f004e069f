"""The raw event: what a platform sent, exactly as received, plus where and when.

Ingest stores it; the worker maps it; dead letters keep it so a replay can map it again with
today's code. Signatures and tokens are never part of it.
"""

from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


def new_event_id() -> str:
    """Sortable by arrival (millisecond clock first), unique by 64 random bits.

    `random`, not `os.urandom`: an id needs to be unique, not secret, and this runs on every
    webhook, where a system call each time shows. Python reseeds `random` from the OS in
    every forked process, so gunicorn's and RQ's children do not repeat each other."""
    return f"{int(time.time() * 1000):012x}{random.getrandbits(64):016x}"


@dataclass(frozen=True)
class RawEvent:
    id: str
    platform: str
    topic: str
    received_at: float
    body: bytes = b""
    content_type: str = ""
    query: str = ""
    # Only the platform's non-secret metadata headers (topic, source, delivery id...).
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON (mappers call this; it raises ValueError when malformed)."""
        return json.loads(self.body)

    def fields(self) -> dict[str, Any]:
        """Postback fields from the query string, a form body or a JSON object body (for
        platforms that post flat key/value data: CheckoutChamp, Sticky.io)."""
        return parse_fields(self.query, self.body, self.content_type)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (the body as text when it is UTF-8, else base64)."""
        data: dict[str, Any] = {
            "id": self.id,
            "platform": self.platform,
            "topic": self.topic,
            "received_at": self.received_at,
            "content_type": self.content_type,
            "query": self.query,
            "headers": dict(self.headers),
        }
        try:
            data["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            data["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RawEvent:
        if "body_base64" in data:
            body = base64.b64decode(data["body_base64"])
        else:
            body = str(data.get("body", "")).encode("utf-8")
        return cls(
            id=data["id"],
            platform=data["platform"],
            topic=data["topic"],
            received_at=float(data["received_at"]),
            body=body,
            content_type=data.get("content_type", ""),
            query=data.get("query", ""),
            headers={k.lower(): v for k, v in (data.get("headers") or {}).items()},
        )


def parse_fields(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    """Merge query string, form body and JSON object body into one flat dict.

    Later sources win: a JSON body's fields override a form body's, which override the
    query string's. Raises ValueError for a JSON body that is malformed, nested too deeply
    or not an object.
    """
    merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body.strip():
        return merged
    if "json" in content_type or body.lstrip()[:1] == b"{":
        data = loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body is not an object")
        merged.update(data)
    else:
        merged.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return merged


def loads(body: bytes | str) -> Any:
    """`json.loads`, with nesting too deep for Python's stack reported as the malformed JSON
    it is for the relay (ValueError), not as a RecursionError that escapes as a 500."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
