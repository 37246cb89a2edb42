"""Partition detection from the membership view: connected -> partitioned -> healing.

Every check (the driver calls ``update`` about every 2 s with counts from the core) we
compute the reachable fraction r = (alive + 1) / (tracked + 1), counting ourselves. Below
``threshold`` (default 0.5) the node is partitioned; once back above it the node is
healing, and after ``healing_window_ms`` without dropping again it is connected.

Results that depend on unreachable nodes are penalised, and say why:
- partitioned: confidence x (1 - 0.5 x (1 - r / threshold)), never below 0.5 x;
- healing: confidence x 0.9;
- connected: unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engram.errors import ValidationError

__all__ = ["PartitionState", "PartitionDetector", "Penalty"]


class PartitionState(enum.Enum):
    CONNECTED = "connected"
    PARTITIONED = "partitioned"
    HEALING = "healing"


@dataclass(frozen=True, slots=True)
class Penalty:
    """A multiplier for a result's confidence and the reason it was applied."""

    factor: float
    reason: str


class PartitionDetector:
    __slots__ = ("threshold", "healing_window_ms", "state", "reachable_fraction", "_healing_since_ms")

    def __init__(self, *, threshold: float = 0.5, healing_window_ms: int = 10_000) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValidationError("partition_threshold", f"{threshold}", "a fraction in (0, 1]", "0.5")
        if healing_window_ms < 0:
            raise ValidationError("healing_window_ms", f"{healing_window_ms}", "milliseconds >= 0", "10000")
        self.threshold = threshold
        self.healing_window_ms = healing_window_ms
        self.state = PartitionState.CONNECTED
        self.reachable_fraction = 1.0
        self._healing_since_ms = 0

    def update(self, alive_others: int, tracked_others: int, now_ms: int) -> PartitionState:
        """Feed the counts of other members alive and tracked (not left); see
        ``Membership.reachability``."""
        assert 0 <= alive_others <= tracked_others
        fraction = (alive_others + 1) / (tracked_others + 1)
        self.reachable_fraction = fraction
        if fraction < self.threshold:
            self.state = PartitionState.PARTITIONED
        elif self.state == PartitionState.PARTITIONED:
            self.state = PartitionState.HEALING
            self._healing_since_ms = now_ms
        elif self.state == PartitionState.HEALING and now_ms - self._healing_since_ms >= self.healing_window_ms:
            self.state = PartitionState.CONNECTED
        return self.state

    def penalty(self) -> Penalty:
        if self.state == PartitionState.PARTITIONED:
            factor = max(0.5, 1.0 - 0.5 * (1.0 - self.reachable_fraction / self.threshold))
            return Penalty(factor, f"partitioned: {self.reachable_fraction:.0%} of members reachable")
        if self.state == PartitionState.HEALING:
            return Penalty(0.9, "healing after a partition: state may still be converging")
        return Penalty(1.0, "")
