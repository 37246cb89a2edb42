"""The data directory lock: one process at a time may open a data directory.

An ``fcntl.flock`` on ``<data>/LOCK`` is released by the kernel when the process
dies, so a crash never leaves a stale lock behind. The file records the holder's
pid so that the error can name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engram.errors import SpaceLockedError


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "LOCK"
        self._fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise SpaceLockedError(
                f"data directory {self.path.parent} is in use by another process (pid {holder}); "
                f"close it there first, or open a different directory, e.g. engram.open('./data-2')", holder
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
