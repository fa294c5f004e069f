"""Children forked by a long-running process end with it, even when it is SIGKILLed.

RQ forks its retry scheduler from `relay worker`. A worker killed with SIGKILL (or by the
OOM killer) runs no cleanup, so the scheduler went on running on its own: scheduling
retries from a worker that no longer exists, holding the scheduler lock, and writing into
Redis for as long as the host lived. On Linux a child can ask the kernel for a signal when
its parent dies (`PR_SET_PDEATHSIG`): each child forked from the main thread asks for
SIGTERM, which RQ's scheduler handles by stopping cleanly and releasing its lock.

The kernel sends that signal when the *thread* that forked ends, not the process: so only
children forked from the main thread (RQ's, the thread that lives as long as the process)
ask for it. `subprocess` children are not affected (they never return to Python after
the fork, so no fork hook runs in them).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_installed = False


def end_forked_children_with_this_process() -> bool:
    """Install the fork hook (once per process). False where the kernel has no such call."""
    global _installed
    if not sys.platform.startswith("linux"):
        return False
    if _installed:
        return True
    parent = os.getpid()
    forking: dict[str, bool] = {"from_main_thread": False}

    def before_fork() -> None:
        forking["from_main_thread"] = threading.current_thread() is threading.main_thread()

    def in_child() -> None:
        if forking["from_main_thread"] and os.getpid() != parent:
            ask_for_signal_on_parent_death(parent)

    os.register_at_fork(before=before_fork, after_in_child=in_child)
    _installed = True
    return True


def ask_for_signal_on_parent_death(parent: int, signum: int = signal.SIGTERM) -> None:
    """In a child: `signum` when the parent dies; at once if it already died after the fork
    and before this call (the child was then handed to another parent)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return  # refused (a sandbox without prctl): the child lives as it did before
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
