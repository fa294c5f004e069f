"""Is a process of this host still alive? Used to take over what a killed worker held.

A process is named by host, pid and start time: in a restarted container the hostname and
the pids come back (a worker is often pid 1 again), but the start time differs, so a new
process is never mistaken for the dead one it replaced.
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def local_process_dead(host: str, pid: int, started: str | None = None) -> bool:
    """True only when that process of this host is certainly gone (other hosts: False)."""
    if host != HOST or pid <= 0:
        return False
    now = start_time(pid)
    if now is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False  # alive, but /proc is not readable here: assume the same process
    return started is not None and now != started


def owner_tag() -> str:
    """host:pid:start, for values that say which process holds something."""
    return f"{HOST}:{os.getpid()}:{start_time(os.getpid()) or '0'}"


def owner_dead(tag: str) -> bool:
    parts = tag.split(":")
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    started = parts[2] if len(parts) > 2 and parts[2].isdigit() and parts[2] != "0" else None
    return local_process_dead(parts[0], int(parts[1]), started)


def started_at(pid: int) -> float | None:
    """When the process started, as epoch seconds (for holders that recorded a time)."""
    ticks = start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat") as stat:
            boot = next(float(line.split()[1]) for line in stat if line.startswith("btime"))
    except (OSError, StopIteration):
        return None
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK")
