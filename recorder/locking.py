"""One writer at a time: an exclusive lock on a lock file, dropped by the kernel when the holder
exits or is killed. The recorder keys it on a recording's real path, train.py on a run directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def exclusive_lock(lock_file: Path) -> int | None:
    """An open descriptor holding the lock on ``lock_file`` (made if missing), or None when another
    process holds it. Raises OSError when the file cannot be made; the caller says what to do."""
    descriptor = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
