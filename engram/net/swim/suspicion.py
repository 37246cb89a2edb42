"""Lifeguard's dynamic suspicion timeout (memberlist suspicion.go).

A suspicion starts at its maximum timeout and shrinks towards the minimum as independent
members confirm it: after c of k confirmations the timeout is
``max - log(c+1)/log(k+1) x (max - min)``, never below ``min``. The member that started it
does not count as a confirmation, and neither does a repeat from the same member. Pure
arithmetic on ``now_ms`` values: the core owns the timer that fires at ``deadline_ms``.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "suspicion_timeout_min_ms"]


def suspicion_timeout_min_ms(suspicion_mult: int, node_count: int, probe_interval_ms: int) -> int:
    """memberlist's suspicionTimeout: mult x max(1, log10 n) x interval."""
    node_scale = max(1.0, math.log10(max(1, node_count)))
    return int(suspicion_mult * (node_scale * 1000) * probe_interval_ms) // 1000


class Suspicion:
    __slots__ = ("started_ms", "confirmations_needed", "timeout_min_ms", "timeout_max_ms",
                 "_confirmed_by", "first_from", "stall_grace_given")

    def __init__(self, first_from: str, confirmations_needed: int, timeout_min_ms: int,
                 timeout_max_ms: int, started_ms: int) -> None:
        assert 0 <= timeout_min_ms <= timeout_max_ms
        self.first_from = first_from
        self.started_ms = started_ms
        self.confirmations_needed = confirmations_needed
        self.timeout_min_ms = timeout_min_ms
        # Without anyone to confirm, waiting for confirmations only delays detection.
        self.timeout_max_ms = timeout_max_ms if confirmations_needed >= 1 else timeout_min_ms
        self._confirmed_by: dict[str, None] = {first_from: None}
        # Set when the timeout ran out during a stall of ours and got its one grace
        # period (Membership.tick): a second expiry is a death even if we stall again.
        self.stall_grace_given = False

    @property
    def confirmations(self) -> int:
        return len(self._confirmed_by) - 1

    def confirm(self, from_node: str) -> bool:
        """Count an independent confirmation; False if already counted or not needed."""
        if self.confirmations >= self.confirmations_needed or from_node in self._confirmed_by:
            return False
        self._confirmed_by[from_node] = None
        return True

    def timeout_ms(self) -> int:
        if self.confirmations_needed < 1:
            return self.timeout_min_ms
        fraction = math.log(self.confirmations + 1.0) / math.log(self.confirmations_needed + 1.0)
        raw = self.timeout_max_ms - fraction * (self.timeout_max_ms - self.timeout_min_ms)
        return max(self.timeout_min_ms, int(math.floor(raw)))

    def deadline_ms(self) -> int:
        return self.started_ms + self.timeout_ms()
