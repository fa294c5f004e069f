"""Logs: one JSON object per line for machines, readable text in a terminal.

Every relay log line can carry the event's id, platform, topic and outcome (passed as
`extra=`). Nothing secret or personal is written: no bodies, no signatures or tokens, and
email addresses are masked wherever they appear (`a***@example.com`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# Fields the relay passes in `extra=`; anything else a library adds is left out.
FIELDS = (
    "event_id",
    "platform",
    "topic",
    "outcome",
    "reason",
    "status",
    "duration",
    "attempt",
    "attempts",
    "entity",
    "api_path",
    "error",
    "retry_in",
    "products",
    "batch",
    "code",
    "method",
    "path",
    "remote",
)
# Also URL-encoded (%40), as in a postback's query string.
_EMAIL = re.compile(
    r"([A-Za-z0-9._+-])[A-Za-z0-9._%+-]*?(@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})", re.IGNORECASE
)


def mask_emails(text: str) -> str:
    return _EMAIL.sub(r"\1***\2\3", text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is None:
            continue
        if isinstance(value, float):
            value = round(value, 4)
        out[name] = mask_emails(value) if isinstance(value, str) else value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_emails(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = mask_emails(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = mask_emails(super().format(record))
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{base} {extras}" if extras else base


def use_text(log_format: str | None, stream: Any = None) -> bool:
    """RELAY_LOG_FORMAT decides; unset, text in a terminal and JSON lines otherwise."""
    if log_format:
        return log_format == "text"
    return (stream or sys.stderr).isatty()


def configure(level: str = "INFO", stream: Any = None, log_format: str | None = None) -> None:
    """Log as JSON lines, or as text when writing to a terminal. Once per process."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if use_text(log_format, stream) else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # RQ logs job arguments (customer data) at INFO; gunicorn's access log is off anyway.
    logging.getLogger("rq").setLevel(logging.WARNING)
