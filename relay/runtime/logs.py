"""Logs: one JSON object per line for machines, readable text in a terminal.

Every relay log line can carry the event's id, platform, topic and outcome (passed as
`extra=`). Nothing secret or personal is written: no bodies, no signatures or tokens, and
email addresses are masked wherever they appear (`a***@example.com`), as are path tokens
(`/webhooks/checkoutchamp/***`). Every field is cut to `MAX_FIELD_CHARS` and the message
to `MAX_MESSAGE_CHARS` before masking, so no sender's value makes a line long or slow.
A line that cannot be formatted is reported as one masked line, not as logging's
"--- Logging error ---" block (which prints the message's arguments as they are).
"""

from __future__ import annotations

import contextlib
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
MAX_FIELD_CHARS = 300
MAX_MESSAGE_CHARS = 1000  # gunicorn's messages quote a request line (up to 4 KB)
MAX_EXCEPTION_CHARS = 8000  # a traceback: its last frames and the error are kept

# An address is `local@domain`, the `@` also URL-encoded (%40) as in a postback's query.
# Found separator first, then its domain forwards and its local part backwards, so the
# cost is linear in the text (a lazy `local*?@` regex retried from every start is O(n²)).
_SEPARATOR = re.compile(r"@|%40")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+-]*")  # matched on the reversed text
_NOT_PERCENT = re.compile(r"[^%]")  # a local part does not start with '%'
MAX_DOMAIN_CHARS = 253  # RFC 1035; a longer run is not a domain

# `/webhooks/<platform>/<token>`: a postback's secret token travels in the path.
TOKEN_PATH = re.compile(r"(/webhooks/[^/?#\s]+/)[^/?#\s'\"]+")


def mask_emails(text: str) -> str:
    """`ada.lovelace@example.com` -> `a***@example.com` (also `%40`), in linear time."""
    pieces: list[str] = []
    reversed_text: str | None = None
    done = 0  # text before this is copied or masked already
    for separator in _SEPARATOR.finditer(text):
        at, after = separator.start(), separator.end()
        if at < done:
            continue
        domain = _DOMAIN.match(text, after, min(len(text), after + MAX_DOMAIN_CHARS))
        if domain is None:
            continue
        reversed_text = reversed_text if reversed_text is not None else text[::-1]
        # The run of local-part characters that ends at the separator, back to `done`.
        run = _LOCAL_REVERSED.match(reversed_text, len(text) - at, len(text) - done)
        assert run is not None  # `*` matches the empty run
        first = _NOT_PERCENT.search(text, at - len(run.group()), at)
        if first is None:
            continue
        start = first.start()
        pieces += [text[done:start], text[start], "***", separator.group(), domain.group()]
        done = domain.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def mask_token_paths(text: str, mask: str = "***") -> str:
    return TOKEN_PATH.sub(lambda m: m.group(1) + mask, text)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def scrub(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """What any logged text goes through: cut, then emails and path tokens masked."""
    return mask_token_paths(mask_emails(clip(text, limit)))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is None:
            continue
        if isinstance(value, float):
            value = round(value, 4)
        out[name] = scrub(value) if isinstance(value, str) else value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z"
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage(), MAX_MESSAGE_CHARS),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = _scrub_traceback(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter.format, with the message and traceback cut and masked.
        record.message = scrub(record.getMessage(), MAX_MESSAGE_CHARS)
        record.asctime = self.formatTime(record, self.datefmt)
        base = self.formatMessage(record)
        if record.exc_info:
            base += "\n" + _scrub_traceback(self.formatException(record.exc_info))
        if record.stack_info:
            base += "\n" + _scrub_traceback(self.formatStack(record.stack_info))
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{base} {extras}" if extras else base


def _scrub_traceback(text: str) -> str:
    """The end of a traceback (the innermost frames and the error itself), masked."""
    if len(text) > MAX_EXCEPTION_CHARS:
        text = "…" + text[-MAX_EXCEPTION_CHARS:]
    return mask_token_paths(mask_emails(text))


class SafeStreamHandler(logging.StreamHandler):
    """A stream handler whose failure to format a line costs one masked line.

    logging's own fallback prints a traceback with the record's message and arguments
    unmasked ("--- Logging error ---"): customer emails, a webhook's values."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not logging.raiseExceptions:
            return
        error = sys.exc_info()[1]
        try:
            report = logging.LogRecord(
                "relay.runtime.logs",
                logging.ERROR,
                record.pathname,
                record.lineno,
                "a log line could not be formatted",
                None,
                None,
            )
            report.outcome = "log_error"
            report.error = f"{type(error).__name__}: {error}" if error else "unknown"
            report.reason = str(record.msg)  # the line's template; its arguments are left out
            self.stream.write(self.format(report) + self.terminator)
            self.flush()
        except Exception:  # the formatter itself is broken: one constant line, nothing else
            with contextlib.suppress(Exception):
                self.stream.write("relay: a log line could not be formatted\n")


def use_text(log_format: str | None, stream: Any = None) -> bool:
    """RELAY_LOG_FORMAT decides; unset, text in a terminal and JSON lines otherwise."""
    if log_format:
        return log_format == "text"
    return (stream or sys.stderr).isatty()


def configure(level: str = "INFO", stream: Any = None, log_format: str | None = None) -> None:
    """Log as JSON lines, or as text when writing to a terminal. Once per process."""
    stream = stream or sys.stderr
    handler = SafeStreamHandler(stream)
    handler.setFormatter(TextFormatter() if use_text(log_format, stream) else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # RQ logs job arguments (customer data) at INFO; gunicorn's access log is off anyway.
    logging.getLogger("rq").setLevel(logging.WARNING)
