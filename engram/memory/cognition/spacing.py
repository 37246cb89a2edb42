"""Spacing effect (Cepeda et al. 2006): spread-out recalls make a memory last longer.

Each memory has a stability S >= 1 (1 for a new memory). Decay reads it by
stretching time: retention(t) = R_fn(t / S), where R_fn is the memory's decay
function (engram.memory.decay), so a memory with S = 2 fades half as fast.

A successful recall at time t (a memory returned as a hit) raises S by how much the
memory had faded since it was last reinforced:
      S' = min(S_MAX, S x (1 + GAIN x (1 - R)))
where R is its retention at t (before this recall). Recalls massed together find
R close to 1 and add almost nothing; a recall after a gap finds R lower and adds
more, the "desirable difficulty" account of the spacing effect. The stability
after a recall is written to the WAL with the recall's TOUCH record (the outcome,
never re-derived on replay), so a reopened space has the same stabilities.
"""

from __future__ import annotations

GAIN = 1.0
STABILITY_MIN = 1.0
STABILITY_MAX = 1000.0


def stretched_elapsed_ns(elapsed_ns: int, stability: float) -> int:
    """The elapsed time decay should see for a memory of this stability."""
    assert stability >= STABILITY_MIN
    return int(max(0, elapsed_ns) / stability)


def after_recall(stability: float, retention_before: float) -> float:
    """Stability after one successful recall at which the memory's retention was ``retention_before``."""
    assert 0.0 <= retention_before <= 1.0
    return min(STABILITY_MAX, max(STABILITY_MIN, stability * (1.0 + GAIN * (1.0 - retention_before))))
