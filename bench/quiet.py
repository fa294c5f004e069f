"""Was the machine quiet during a measurement? CPU time spent by processes that are not the
benchmark's own, from /proc.

On a shared 2-core box another job (a test suite, another benchmark) takes CPU from the
servers under test and bends a throughput figure. The load average reacts over a minute;
this counts the CPU the whole machine used during one run and subtracts what the run's own
processes (the servers, Redis, wrk, this process) used: what is left is someone else's.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import process_tree

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def machine_busy_seconds() -> float:
    """CPU seconds the machine has spent busy (user, nice, system, irq, softirq) or lost to
    the hypervisor (steal). Without CONFIG_IRQ_TIME_ACCOUNTING (Debian's and this VM's
    kernels) interrupt time is also charged to the process it interrupted, so the run's own
    loopback traffic shows in its processes' system time."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def process_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / TICK


def _children_seconds() -> float:
    """CPU of this process's waited-for children (wrk runs as one) and of itself."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime


@dataclass
class Sample:
    machine: float
    own: float


class CpuWatch:
    """`start()` then `foreign_cores()` after a run: how many cores, on average, processes
    other than `roots` (and their children), this process and its waited-for children
    kept busy, or the hypervisor took."""

    def __init__(self, roots: list[int]):
        self.roots = roots
        self._start: Sample | None = None
        self._started_at = 0.0

    def _sample(self) -> Sample:
        pids = [pid for root in self.roots for pid in process_tree(root)]
        return Sample(machine_busy_seconds(), process_seconds(pids) + _children_seconds())

    def start(self) -> None:
        self._started_at = os.times().elapsed
        self._start = self._sample()

    def foreign_cores(self) -> float:
        assert self._start is not None
        end = self._sample()
        elapsed = max(os.times().elapsed - self._started_at, 1e-3)
        foreign = (end.machine - self._start.machine) - (end.own - self._start.own)
        return max(foreign, 0.0) / elapsed


def wait_for_quiet(max_cores: float, timeout: float, window: float = 1.0) -> bool:
    """Wait (up to `timeout` seconds) for a `window` in which the whole machine used at most
    `max_cores`: between runs the servers are idle, so whatever runs is someone else's."""
    deadline = time.monotonic() + timeout
    while True:
        before, started = machine_busy_seconds(), time.monotonic()
        time.sleep(window)
        if (machine_busy_seconds() - before) / (time.monotonic() - started) <= max_cores:
            return True
        if time.monotonic() > deadline:
            return False
