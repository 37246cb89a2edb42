"""The one place the cluster drivers read the clock.

``trio.current_time()`` is trio's monotonic clock, so tests that run the driver under
``trio.testing.MockClock`` get virtual milliseconds here too. It starts at an arbitrary
(even random) point per process, so ``wall_offset_ms()`` gives the core the wall clock as
an offset from it: the one clock all nodes share (NTP-close), which aligned probing reads
its steps from. A wall clock that is off or jumps only makes that order less aligned.
"""

from __future__ import annotations

import time

import trio

__all__ = ["now_ms", "wall_offset_ms"]


def now_ms() -> int:
    return int(trio.current_time() * 1000)


def wall_offset_ms() -> int:
    """Wall-clock milliseconds minus ``now_ms()``: what ``Membership.set_clock_offset`` takes."""
    return int(time.time() * 1000) - now_ms()
