"""Fan effect (Anderson 1974): activation divides among a memory's associations.

In Anderson's ACT model a concept's source activation is shared by every fact it
is attached to, so a concept with more associations ("a larger fan") passes less
activation along each and facts about it are recognised more slowly. Here:

- Spreading during recall (modes "spreading" and "hybrid") follows the reference
  spreading rule of engram.memory.graph, except that what a node passes along each
  edge is divided by its fan:
      received = parent_activation x edge_weight x exp(-rate x depth) / D(fan(parent))
  with D(f) = f ("fan", the default) or sqrt(f) ("sqrt"), configurable per space
  (``SpaceConfig.fan_divisor``); "none" (D = 1) is what recall uses with the effect off. Seeds start at their similarity score, not 1.0.
- Every hit reports an estimated retrieval time, Anderson's linear fit:
      estimated_retrieval_ms = 1150 + 70 x (fan - 1)      (fan 0 counts as 1)

``sp.spread`` keeps the undivided reference rule (it is what the original's API does);
only recall applies the fan effect. Determinism: levels visit nodes and neighbours
in ascending id order, as graph.spread does.
"""

from __future__ import annotations

import math

from engram.memory.graph import AssociationGraph

BASE_RETRIEVAL_MS = 1150.0
MS_PER_EXTRA_ASSOCIATION = 70.0
DIVISORS = ("fan", "sqrt")


def divisor(fan: int, kind: str) -> float:
    """How much a node with ``fan`` associations divides the activation it passes on."""
    f = max(1, fan)
    if kind == "none":
        return 1.0
    if kind == "sqrt":
        return math.sqrt(f)
    assert kind == "fan"
    return float(f)


def estimated_retrieval_ms(fan: int) -> float:
    """Anderson's retrieval-time estimate: 1150 + 70 x (fan - 1) ms."""
    return BASE_RETRIEVAL_MS + MS_PER_EXTRA_ASSOCIATION * (max(1, fan) - 1)


def spread(
    graph: AssociationGraph, seeds: dict[str, float], max_hops: int, rate: float, kind: str
) -> tuple[dict[str, float], dict[str, int]]:
    """Fan-divided spreading from ``seeds`` (id -> starting activation in [0, 1]).

    Returns (activation of every reached node including seeds, depth at which each
    node was first reached: 0 for seeds). Activations add up and are capped at 1.0;
    a node below its depth's threshold is dropped and spreads no further; a node
    expands at most once, so cycles terminate.
    """
    return graph.spread_from(seeds, max_hops, rate, divide=lambda fan: divisor(fan, kind))
