"""Whether a process still runs, by pid (and when it started, so that a reused pid is told apart): the checks the
frame bus, worker-id claims and the tests share; and :func:`die_with_parent`, for helper processes that must not
outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of a child process (ffmpeg, gst-rtsp-server, a restore's snapshot server): the kernel sends it
    SIGTERM when the thread that started it dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as existing, and a reused pid as the
    process: :func:`process_start` tells those apart)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except (OSError, OverflowError):
        return False
    return True


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, or None when it does not exist or has died (a
    zombie); 0 where ``/proc`` cannot tell (then only the pid identifies the process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return 0 if pid_alive(pid) else None
    fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...; starttime is field 22
    if not fields or fields[0] in (b"Z", b"X", b"x"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0
