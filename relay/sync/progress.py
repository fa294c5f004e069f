"""Progress for people: one line per phase, with the count against the store's total
(X-WP-Total), the rate and the time left. On a terminal the line is redrawn in place; in a
log or a pipe a line is written every LOG_EVERY seconds and when a phase ends.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from relay.sync.checkpoints import PhaseState, Run

LOG_EVERY = 10.0
REDRAW_EVERY = 0.2


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def phase_line(title: str, state: PhaseState, note: str = "") -> str:
    total = state.total
    done = state.scanned
    if state.done:
        text = f"{title}: {done} read, {state.pushed} handed to delivery, done"
    elif total:
        share = min(done / total, 1.0) if total else 0.0
        width = 24
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        text = f"{title}: [{bar}] {done}/{total} {share:.0%}"
        if state.rate > 0:
            text += f", {state.rate:.0f}/s, {duration((total - done) / state.rate)} left"
    else:
        text = f"{title}: {done} read"
        if state.rate > 0:
            text += f", {state.rate:.0f}/s"
    if state.skipped:
        text += f", {state.skipped} could not be read"
    if note:
        text += f" ({note})"
    return text


class ProgressPrinter:
    """The Runner's progress callback for the command line."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._last = 0.0
        self._phase = ""
        self._width = 0
        # Said before the first progress line (so that a run that fails at its first
        # request says only why).
        self.header = ""

    def __call__(self, run: Run, state: PhaseState, note: str) -> None:
        if self.header:
            self.stream.write(self.header + "\n")
            self.header = ""
        title = next((p.title for p in run.phases if p.name == state.name), state.name)
        now = time.monotonic()
        changed = state.name != self._phase
        if changed and self.tty and self._width:
            self.stream.write("\n")
            self._width = 0
        self._phase = state.name
        every = REDRAW_EVERY if self.tty else LOG_EVERY
        if not (state.done or changed or now - self._last >= every):
            return
        self._last = now
        line = phase_line(title, state, note)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            if state.done:
                self.stream.write("\n")
                self._width = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
