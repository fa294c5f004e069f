"""`relay send`: sign a payload file the way the platform would, and post it to a relay.

The file's extension says how the platform sends it: `.json` a JSON body, `.form` a form
body, `.query` a query string (GET). The topic comes from `--topic`, or from the fixture's
`<case>.expected.json` beside the file, so every fixture can be sent as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from relay.fixtures import CONTENT_TYPES, expected_path
from relay.mapping import Platform


class SendError(Exception):
    pass


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    path: str  # /webhooks/<platform>, plus ?query for GET postbacks
    headers: dict[str, str]
    body: bytes


def topic_beside(file: Path) -> str | None:
    expected = expected_path(file)
    if not expected.exists():
        return None
    return json.loads(expected.read_text()).get("topic")


def build_request(
    platform: Platform, secret: str, file: Path, topic: str | None
) -> OutgoingRequest:
    raw = file.read_bytes()
    path = f"/webhooks/{platform.name}"
    topic = topic or topic_beside(file) or ""
    headers: dict[str, str] = {}
    if platform.send_headers is not None:
        if not topic:
            raise SendError(f"{platform.title} needs a topic: give --topic (e.g. order.created)")
        headers.update(platform.send_headers(topic, raw))
    if file.suffix == ".query":
        query = raw.decode().strip().lstrip("?")
        return OutgoingRequest(
            "GET", f"{path}?{query}", {**headers, **platform.verifier.sign(b"", secret)}, b""
        )
    content_type = CONTENT_TYPES.get(file.suffix)
    if content_type is None:
        raise SendError(f"cannot tell how to send {file.name}: use .json, .form or .query")
    headers["Content-Type"] = content_type
    headers.update(platform.verifier.sign(raw, secret))
    return OutgoingRequest("POST", path, headers, raw)
