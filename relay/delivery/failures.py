"""What an unexpected exception costs one event: how it is described in its dead letter, and
which exceptions no single event caused (those stop the whole job instead)."""

from __future__ import annotations

import traceback

from redis import RedisError
from rq.timeouts import BaseTimeoutException

MAX_MESSAGE_CHARS = 500  # of the exception's own text (it may quote a 2 MB value)


def not_ours(exc: BaseException) -> bool:
    """Redis failing, or RQ's job timeout: the job fails and RQ runs it again (an event is
    dead-lettered for it only after repeated failures, relay/inbox.py)."""
    return isinstance(exc, RedisError | BaseTimeoutException)


def describe(exc: BaseException, frames: int = 8) -> str:
    """Exception type, its message (cut), and the innermost frames: enough to find the bug."""
    message = str(exc)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in stack)
    return f"{type(exc).__name__}: {message} (at {where})"
