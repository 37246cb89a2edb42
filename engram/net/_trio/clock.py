"""The one place the cluster drivers read the clock.

``trio.current_time()`` is trio's monotonic clock, so tests that run the driver under
``trio.testing.MockClock`` get virtual milliseconds here too.
"""

from __future__ import annotations

import trio

__all__ = ["now_ms"]


def now_ms() -> int:
    return int(trio.current_time() * 1000)
