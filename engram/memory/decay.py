"""Lazy forgetting: retention computed at read time, never by a background sweep.

The functions and constants are the original Engram's (see
reference/engram-http-api.md). ``t`` is the time since a memory was last
reinforced (stored or recalled), in hours. Every function is floored at
``RETENTION_FLOOR`` so a memory fades but is never wiped by decay alone.

- exponential:   R = exp(-t / tau), tau = 1.96 h (Ebbinghaus' fast early loss)
- power_law:     R = (1 + t) ** -beta, beta = 0.18 (Wixted's long tail)
- two_component: exponential while recalled fewer than 3 times, power law after
                 (a memory that has been retrieved repeatedly is consolidated)
- hybrid:        exponential up to ``HYBRID_TRANSITION_HOURS``, then a power law that
                 continues from the value reached there (no jump at the transition)
- none:          R = 1
"""

from __future__ import annotations

import math

EXPONENTIAL_TAU_HOURS = 1.96
POWER_LAW_BETA = 0.18
TWO_COMPONENT_RECALLS = 3
# One hour of fast short-term loss: a longer exponential phase would hit the floor
# (exp(-t/1.96) is 0.1 after 4.5 h) before the power law could take over.
HYBRID_TRANSITION_HOURS = 1.0
RETENTION_FLOOR = 0.1
_NS_PER_HOUR = 3_600_000_000_000


def retention(function: str, elapsed_ns: int, access_count: int) -> float:
    """Retention in [RETENTION_FLOOR, 1] after ``elapsed_ns`` for the named function."""
    t = max(elapsed_ns, 0) / _NS_PER_HOUR
    if function == "none":
        return 1.0
    if function == "two_component":
        function = "power_law" if access_count >= TWO_COMPONENT_RECALLS else "exponential"
    if function == "exponential":
        r = math.exp(-t / EXPONENTIAL_TAU_HOURS)
    elif function == "power_law":
        r = (1.0 + t) ** -POWER_LAW_BETA
    elif function == "hybrid":
        if t <= HYBRID_TRANSITION_HOURS:
            r = math.exp(-t / EXPONENTIAL_TAU_HOURS)
        else:
            at_transition = math.exp(-HYBRID_TRANSITION_HOURS / EXPONENTIAL_TAU_HOURS)
            r = at_transition * ((1.0 + t) / (1.0 + HYBRID_TRANSITION_HOURS)) ** -POWER_LAW_BETA
    else:
        raise AssertionError(f"unknown decay function {function!r}")
    return min(1.0, max(RETENTION_FLOOR, r))
