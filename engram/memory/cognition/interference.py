"""Interference: similar memories learned close in time compete at recall.

- Proactive interference (Underwood 1957): older learning disrupts newer. Each
  memory created earlier than M, at most 6 h before it, with cosine >= 0.7 to M,
  lowers M's recall confidence by 5%, at most 30%:
      proactive factor = 1 - min(0.30, 0.05 x count)
- Retroactive interference (McGeoch 1942): newer learning disrupts older. The
  memories created later than M, at most 24 h after it, with cosine >= 0.6 to M,
  lower M's confidence by 0.15 x their mean cosine x sqrt(count), at most 25%:
      retroactive factor = 1 - min(0.25, 0.15 x mean_cosine x sqrt(count))

Both grow with similarity (the thresholds, and the mean cosine) and with count.
Times are the memories' creation times (``when``), not wall-clock arrival, so the
result depends only on the stored set: the space caches the inputs per memory and
updates them exactly as memories are stored and forgotten. Memories created at the same instant interfere with
neither rule (neither is earlier).
"""

from __future__ import annotations

import math

import numpy as np

from engram.memory.cognition import NS_PER_HOUR

PROACTIVE_WINDOW_NS = 6 * NS_PER_HOUR
PROACTIVE_COSINE_MIN = 0.7
PROACTIVE_STEP = 0.05
PROACTIVE_MAX = 0.30
RETROACTIVE_WINDOW_NS = 24 * NS_PER_HOUR
RETROACTIVE_COSINE_MIN = 0.6
RETROACTIVE_SCALE = 0.15
RETROACTIVE_MAX = 0.25
WINDOW_BEFORE_NS = PROACTIVE_WINDOW_NS
WINDOW_AFTER_NS = RETROACTIVE_WINDOW_NS


def proactive_factor(count: int) -> float:
    return 1.0 - min(PROACTIVE_MAX, PROACTIVE_STEP * count)


def retroactive_factor(count: int, mean_cosine: float) -> float:
    if count == 0:
        return 1.0
    return 1.0 - min(RETROACTIVE_MAX, RETROACTIVE_SCALE * mean_cosine * math.sqrt(count))


def inputs(created_ns: int, others_created_ns: np.ndarray, others_cosine: np.ndarray) -> tuple[int, list[float]]:
    """(count of earlier similar memories, cosines of later similar memories): what the
    factors depend on, in a form the space can keep up to date as memories come and go."""
    delta = others_created_ns.astype(np.int64) - np.int64(created_ns)
    earlier = (delta < 0) & (delta >= -PROACTIVE_WINDOW_NS) & (others_cosine >= PROACTIVE_COSINE_MIN)
    later = (delta > 0) & (delta <= RETROACTIVE_WINDOW_NS) & (others_cosine >= RETROACTIVE_COSINE_MIN)
    return int(np.count_nonzero(earlier)), [float(c) for c in others_cosine[later].tolist()]


def factors_from(earlier_count: int, later_cosines: list[float]) -> tuple[float, float]:
    """The factors from ``inputs``; the mean is summed in sorted order, so it does not
    depend on the order in which the cosines were collected."""
    count = len(later_cosines)
    mean = float(np.sort(np.array(later_cosines, np.float64)).sum() / count) if count else 0.0
    return proactive_factor(earlier_count), retroactive_factor(count, mean)


def factors(created_ns: int, others_created_ns: np.ndarray, others_cosine: np.ndarray) -> tuple[float, float]:
    """(proactive factor, retroactive factor) of a memory created at ``created_ns``.

    ``others_*`` describe the other live memories in its window (the memory itself
    excluded), in any order: the sums below are order-independent up to the final
    mean, which is taken in ascending-creation order to stay deterministic.
    """
    delta = others_created_ns.astype(np.int64) - np.int64(created_ns)
    earlier = (delta < 0) & (delta >= -PROACTIVE_WINDOW_NS) & (others_cosine >= PROACTIVE_COSINE_MIN)
    later = (delta > 0) & (delta <= RETROACTIVE_WINDOW_NS) & (others_cosine >= RETROACTIVE_COSINE_MIN)
    pro = proactive_factor(int(np.count_nonzero(earlier)))
    count = int(np.count_nonzero(later))
    mean = float(np.sort(others_cosine[later].astype(np.float64)).sum() / count) if count else 0.0
    return pro, retroactive_factor(count, mean)
