"""Lifeguard's local health ("awareness"): a score that grows when we seem to be the
problem (missed nacks, having to refute a suspicion) and shrinks with every successful
probe. Probe intervals are multiplied by score + 1, so a node stalled by CPU or GC slows its
own accusations down instead of declaring healthy peers dead (memberlist awareness.go)."""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    __slots__ = ("score", "score_max")

    def __init__(self, multiplier_max: int) -> None:
        assert multiplier_max >= 1
        self.score = 0
        self.score_max = multiplier_max - 1

    def apply_delta(self, delta: int) -> None:
        self.score = min(self.score_max, max(0, self.score + delta))

    def scale_ms(self, duration_ms: int) -> int:
        return duration_ms * (self.score + 1)
