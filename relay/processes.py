"""Is a process of this host still alive? Used to take over what a killed worker held."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def local_pid_dead(host: str, pid: int) -> bool:
    """True only when `pid` on this host is certainly gone (other hosts: unknown, False)."""
    if host != HOST or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def owner_tag() -> str:
    """host:pid, for values that say which process holds something."""
    return f"{HOST}:{os.getpid()}"


def owner_dead(tag: str) -> bool:
    host, _, rest = tag.partition(":")
    pid = rest.split(":", 1)[0]
    return pid.isdigit() and local_pid_dead(host, int(pid))
