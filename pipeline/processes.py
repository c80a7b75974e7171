"""Whether a process still runs, by pid: the one check the frame bus, worker-id claims and the tests share."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as existing, and a reused pid as the
    process; the frame bus also compares the process's start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except (OSError, OverflowError):
        return False
    return True
