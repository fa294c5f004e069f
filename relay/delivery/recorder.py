"""The answers of the requests in flight, recorded as they arrive.

Every send writes before it goes out (the attempt mark, and what the answers before it
delivered) and after its answer (what it delivered, the lock given back). A worker keeps many
requests in flight, so many such writes are due at once; instead of each paying its own round
trip and fsync, the first to find the connection free takes every write queued so far and
sends them as one pipeline, as ingest does with webhooks (relay/group_commit.py). A lone write
still makes exactly one call, with no delay added.

    results = recorder.write([lambda p: p.hset(...), lambda p: p.expire(...)])

Each command function adds one command to the pipeline; `write` returns their results, or
raises the first error among them (or the connection's). Scripts go in as `EVALSHA` (see
`script`): redis-py's own pipelined scripts would ask `SCRIPT EXISTS` first, a round trip
more for every write; a Redis that restarted and forgot them gets them loaded, and the
writes that found them missing are sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from relay.group_commit import GroupCommit

Command = Callable[[Any], Any]


def _interrupted() -> BaseException:
    return RedisConnectionError("the write this answer shared with others was interrupted")


class Recorder:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._commit: GroupCommit[list[Command], list[Any]] = GroupCommit(self._run, _interrupted)

        self._scripts: dict[str, Script] = {}

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Command:
        """A command that runs `script` (registered with redis-py) by its hash."""
        self._scripts.setdefault(script.sha, script)
        return lambda p: p.evalsha(script.sha, len(keys), *keys, *args)

    def write(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        return self._commit.submit(list(commands))

    def _run(self, batch: Sequence[list[Command]]) -> list[Any]:
        out = self._execute(batch)
        missing = [i for i, result in enumerate(out) if isinstance(result, NoScriptError)]
        if missing:  # Redis restarted and forgot the scripts: none of those writes ran
            for script in self._scripts.values():
                self.redis.script_load(script.script)
            again = self._execute([batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                out[i] = result
        return out

    def _execute(self, batch: Sequence[list[Command]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for commands in batch:
            for command in commands:
                command(pipe)
        results = pipe.execute(raise_on_error=False)
        out: list[Any] = []
        start = 0
        for commands in batch:
            part = results[start : start + len(commands)]
            start += len(commands)
            error = next((r for r in part if isinstance(r, Exception)), None)
            out.append(error if error is not None else part)
        return out
