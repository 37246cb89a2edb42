"""Reconsolidation (Nader et al. 2000): recall makes a consolidated memory labile again.

A memory can be modified only when both hold at the time of the change:
- it was actively recalled (returned by a recall) between 1 h and 6 h ago, and
- it is between 24 h and 365 days old (younger ones are still consolidating, older
  ones are treated as stable and never reconsolidate).
Plasticity over the window follows an inverted U with its peak of 0.5 half-way:
      x = (time since recall - 1 h) / (6 h - 1 h),   plasticity = 0.5 x 4x(1 - x)
A change moves the memory towards the new values by the plasticity:
      confidence' = confidence + plasticity x (target - confidence)
      embedding'  = embedding  + plasticity x (target - embedding)
and replaces content or tags outright (text has no halfway). Each change is one
WAL record holding the new and the previous version; the previous versions stay in
the memory's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from engram.memory.cognition import NS_PER_DAY, NS_PER_HOUR

WINDOW_OPENS_NS = 1 * NS_PER_HOUR
WINDOW_CLOSES_NS = 6 * NS_PER_HOUR
AGE_MIN_NS = 24 * NS_PER_HOUR
AGE_MAX_NS = 365 * NS_PER_DAY
PLASTICITY_PEAK = 0.5


@dataclass(frozen=True, slots=True)
class Window:
    """Whether a memory is modifiable now; if not, why and when (ns) it could be."""

    open: bool
    plasticity: float
    reason: str
    opens_ns: int | None = None  # the next time the window opens, when one is known


def plasticity(since_recall_ns: int) -> float:
    """0.5 x 4x(1 - x) over the window, 0 outside it."""
    if since_recall_ns < WINDOW_OPENS_NS or since_recall_ns > WINDOW_CLOSES_NS:
        return 0.0
    x = (since_recall_ns - WINDOW_OPENS_NS) / (WINDOW_CLOSES_NS - WINDOW_OPENS_NS)
    return PLASTICITY_PEAK * 4.0 * x * (1.0 - x)


def window(now_ns: int, created_ns: int, last_recall_ns: int | None) -> Window:
    """The reconsolidation window of a memory at ``now_ns``."""
    age = now_ns - created_ns
    if age > AGE_MAX_NS:
        return Window(False, 0.0, "it is older than 365 days; such memories are stable and never reconsolidate")
    if age < AGE_MIN_NS:
        return Window(False, 0.0, f"it is {age / NS_PER_HOUR:.1f} h old; a memory must be at least 24 h old, "
                      "then recalled, then changed between 1 h and 6 h after that recall", created_ns + AGE_MIN_NS)
    if last_recall_ns is None:
        return Window(False, 0.0, "it has never been recalled; recall it, then change it between 1 h and 6 h after "
                      "that recall", now_ns + WINDOW_OPENS_NS)
    since = now_ns - last_recall_ns
    if since < WINDOW_OPENS_NS:
        opens = last_recall_ns + WINDOW_OPENS_NS
        if opens - created_ns > AGE_MAX_NS:
            return Window(False, 0.0, "it will be older than 365 days when the window would open; it never reconsolidates")
        return Window(False, 0.0, f"it was recalled {since / NS_PER_HOUR * 60:.0f} min ago; the window opens 1 h after "
                      "a recall", opens)
    if since > WINDOW_CLOSES_NS:
        return Window(False, 0.0, f"its last recall was {since / NS_PER_HOUR:.1f} h ago and the window closes 6 h after "
                      "a recall; recall it again to reopen it (1 h after that recall)", now_ns + WINDOW_OPENS_NS)
    return Window(True, plasticity(since), "open")


def blend(old: float, target: float, p: float) -> float:
    return old + p * (target - old)
