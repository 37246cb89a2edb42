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
brings them up to date exactly, at the next recall, with what was stored and forgotten
since (engram.memory.interference_cache). Memories created at the same instant interfere with
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


# Later cosines are summed as integers in these units: a float32 >= 0.5 is an integer
# multiple of 2**-24, so the sum is exact and independent of the order of the terms.
COSINE_UNITS_PER_ONE = 1 << 24


def inputs(created_ns: int, others_created_ns: np.ndarray, others_cosine: np.ndarray) -> tuple[int, int, int]:
    """(count of earlier similar memories, count of later similar memories, sum of the
    later cosines in 2**-24 units): what the factors depend on, in a form that can be
    added to and taken from as memories come and go (engram.memory.interference_cache)."""
    earlier, later, units = inputs_batch(np.array([created_ns], np.int64), others_created_ns, others_cosine.reshape(1, -1))
    return int(earlier[0]), int(later[0]), int(units[0])


def inputs_batch(created_ns: np.ndarray, others_created_ns: np.ndarray, cosines: np.ndarray,
                 counted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``inputs`` for b memories at once against the same m others: ``cosines`` (b, m);
    ``counted`` (b, m), if given, says which pairs count at all. Three int64 arrays (b,)."""
    delta = others_created_ns.astype(np.int64)[None, :] - created_ns.astype(np.int64)[:, None]
    earlier = (delta < 0) & (delta >= -PROACTIVE_WINDOW_NS) & (cosines >= PROACTIVE_COSINE_MIN)
    later = (delta > 0) & (delta <= RETROACTIVE_WINDOW_NS) & (cosines >= RETROACTIVE_COSINE_MIN)
    if counted is not None:
        earlier &= counted
        later &= counted
    which, _ = np.nonzero(later)
    units = np.rint(cosines[later].astype(np.float64) * COSINE_UNITS_PER_ONE).astype(np.int64)
    per_memory = np.zeros(cosines.shape[0], np.int64)
    np.add.at(per_memory, which, units)
    return earlier.sum(axis=1, dtype=np.int64), later.sum(axis=1, dtype=np.int64), per_memory


def factors_from_totals(earlier_count: int, later_count: int, later_units: int) -> tuple[float, float]:
    """The factors from ``inputs`` (summed over any split of the other memories): the
    same bits as ``factors`` over the whole set."""
    mean = later_units / COSINE_UNITS_PER_ONE / later_count if later_count else 0.0
    return proactive_factor(earlier_count), retroactive_factor(later_count, mean)


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
