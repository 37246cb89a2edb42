"""Priming: recalling a memory makes related memories briefly easier to recall.

Three kinds, combined with saturation into one confidence factor per hit:

- Semantic priming (Neely 1977). The memory a recall returns first (its top hit,
  "the recalled memory") primes the memories most like it: its 10 nearest
  neighbours with cosine >= 0.6 (hop 1, attenuation 1.0), and through each of them
  the memories with cosine >= 0.6 to that neighbour (hop 2, attenuation 0.5):
      boost = attenuation x 0.15 x (cosine - 0.6) / 0.4
  Lateral inhibition among the targets of one recall (competing primes suppress
  each other): boost_i' = max(0, boost_i - 0.3 x mean of the other targets' boosts).
  A target primed less than 50 ms ago ignores a new prime (refractory period).
  A prime decays with a 300 ms half-life:  boost(t) = boost x 0.5 ** ((t - t0) / 300 ms),
  and the primes a memory holds saturate:   semantic = tanh(sum of boosts(t)).
- Associative priming (McKoon & Ratcliff 1992). Recalled memories (top hits) that
  were recalled within 30 s of each other at least twice prime each other with
  strength P(B|A) = co-recalls(A, B) / recalls(A): boost 0.15 x P(B|A), decaying
  like a semantic prime.
- Repetition priming (Tulving & Schacter 1990): +5% per earlier exposure (the
  memory's access count), at most 30%.

Combination (saturating, never above 1):
      priming = 1 - exp(-(semantic + associative + repetition))
      confidence' = min(1, confidence x (1 + priming))

Cost: the hop-1 neighbours of a recalled memory are found in the next recall's
pass over the matrix (its vector joins that pass's queries, which costs little
more than one query); they reflect the space as it is then. Hop 2 is evaluated
lazily for the hits of a later recall against the active hop-1 targets, so it has
no 10-neighbour cap. Priming state lives in memory only: it lasts seconds and is
not written to the WAL; a reopened space starts unprimed.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engram.memory.cognition import NS_PER_MS, NS_PER_S

SEMANTIC_COSINE_MIN = 0.6
SEMANTIC_BOOST_MAX = 0.15
NEIGHBOURS_MAX = 10
HOP_ATTENUATION = (1.0, 0.5)
HALF_LIFE_NS = 300 * NS_PER_MS
REFRACTORY_NS = 50 * NS_PER_MS
LATERAL_INHIBITION = 0.3
ASSOCIATIVE_WINDOW_NS = 30 * NS_PER_S
ASSOCIATIVE_MIN_CO_RECALLS = 2
ASSOCIATIVE_BOOST_MAX = 0.15
REPETITION_STEP = 0.05
REPETITION_MAX = 0.30
# After 20 half-lives (6 s) a prime is below 1e-6 of its start: forget it.
PRIME_LIFETIME_NS = 20 * HALF_LIFE_NS
PAIRS_MAX = 100_000  # bound on the associative co-recall table


def semantic_boost(cosine: float, hop: int) -> float:
    """0.15 x (cosine - 0.6) / 0.4, attenuated by hop; 0 below the threshold."""
    if cosine < SEMANTIC_COSINE_MIN:
        return 0.0
    return HOP_ATTENUATION[hop - 1] * SEMANTIC_BOOST_MAX * (min(1.0, cosine) - SEMANTIC_COSINE_MIN) / (1.0 - SEMANTIC_COSINE_MIN)


def inhibited(boosts: list[float]) -> list[float]:
    """Lateral inhibition among the targets of one prime event."""
    n = len(boosts)
    if n < 2:
        return list(boosts)
    total = sum(boosts)
    return [max(0.0, b - LATERAL_INHIBITION * (total - b) / (n - 1)) for b in boosts]


def decayed(boost: float, since_ns: int) -> float:
    if since_ns < 0:
        return 0.0  # a prime from the clock's future (clock moved back) does not act
    return boost * 0.5 ** (since_ns / HALF_LIFE_NS)


def repetition(access_count: int) -> float:
    return min(REPETITION_MAX, REPETITION_STEP * access_count)


def combine(semantic_sum: float, associative: float, repeated: float) -> float:
    """The saturating combination: 1 - exp(-(tanh(semantic) + associative + repetition))."""
    return 1.0 - math.exp(-(math.tanh(semantic_sum) + associative + repeated))


class PrimingState:
    """A space's live primes. The space holds its lock while calling these."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, int]] = []  # recalled memories whose neighbours are not found yet
        self.semantic: dict[str, list[tuple[int, float]]] = {}  # hop-1 target -> [(t0, boost)]
        self.associative: dict[str, list[tuple[int, float]]] = {}
        self.last_primed: dict[str, int] = {}
        self.recent: deque[tuple[int, str]] = deque()
        self.recalls: dict[str, int] = {}
        self.co_recalls: dict[tuple[str, str], int] = {}

    def prune(self, now_ns: int) -> None:
        for table in (self.semantic, self.associative):
            for target in [t for t, primes in table.items() if all(now_ns - t0 > PRIME_LIFETIME_NS for t0, _ in primes)]:
                del table[target]
        for target in [t for t, t0 in self.last_primed.items() if now_ns - t0 > PRIME_LIFETIME_NS]:
            del self.last_primed[target]
        while self.recent and now_ns - self.recent[0][0] > ASSOCIATIVE_WINDOW_NS:
            self.recent.popleft()

    def recalled(self, memory_id: str, now_ns: int, embedded: bool) -> None:
        """Note that ``memory_id`` was the top hit of a recall at ``now_ns``."""
        self.prune(now_ns)
        if embedded:
            self.pending.append((memory_id, now_ns))
        # Associative: one co-recall per pair per recall event, within 30 s.
        partners = sorted({other for t0, other in self.recent if other != memory_id and now_ns - t0 <= ASSOCIATIVE_WINDOW_NS})
        self.recalls[memory_id] = self.recalls.get(memory_id, 0) + 1
        for other in partners:
            for pair in ((memory_id, other), (other, memory_id)):
                if pair in self.co_recalls or len(self.co_recalls) < PAIRS_MAX:
                    self.co_recalls[pair] = self.co_recalls.get(pair, 0) + 1
        self.recent.append((now_ns, memory_id))
        for (a, b), count in sorted(self.co_recalls.items()):
            if a == memory_id and count >= ASSOCIATIVE_MIN_CO_RECALLS:
                strength = count / self.recalls[memory_id]
                self.associative.setdefault(b, []).append((now_ns, ASSOCIATIVE_BOOST_MAX * min(1.0, strength)))

    def take_pending(self) -> list[tuple[str, int]]:
        pending, self.pending = self.pending, []
        return pending

    def prime_neighbours(self, t0: int, targets: list[tuple[str, float]]) -> None:
        """Record a recalled memory's hop-1 neighbours (id, cosine), best first, at most 10."""
        boosts = inhibited([semantic_boost(c, 1) for _, c in targets])
        for (target, _), boost in zip(targets, boosts):
            last = self.last_primed.get(target)
            if last is not None and 0 <= t0 - last < REFRACTORY_NS:
                continue
            if boost <= 0.0:
                continue
            self.semantic.setdefault(target, []).append((t0, boost))
            self.last_primed[target] = t0

    def active_hop1(self, now_ns: int) -> list[tuple[str, float]]:
        """(target, current boost) of every hop-1 prime still acting, sorted by id."""
        out = []
        for target in sorted(self.semantic):
            value = sum(decayed(b, now_ns - t0) for t0, b in self.semantic[target])
            if value > 1e-9:
                out.append((target, value))
        return out

    def factor(self, memory_id: str, now_ns: int, access_count: int, hop2_sum: float) -> float:
        """1 + priming for one hit at ``now_ns``; ``hop2_sum`` is its hop-2 boost already decayed."""
        semantic_sum = hop2_sum + sum(decayed(b, now_ns - t0) for t0, b in self.semantic.get(memory_id, ()))
        associative = sum(decayed(b, now_ns - t0) for t0, b in self.associative.get(memory_id, ()))
        return 1.0 + combine(semantic_sum, associative, repetition(access_count))


def hop2_boosts(hit_vectors: np.ndarray, hop1_vectors: np.ndarray, hop1_strength: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Hop-2 boost of each hit: sum over active hop-1 targets j of
    strength_j / 0.15 x semantic_boost(cos(hit, j), 2), i.e. the hop-2 prime scaled
    by how strongly (and how recently) j itself was primed.

    ``hit_vectors`` and ``hop1_vectors`` are unit rows; ``same[i, j]`` is True where
    hit i is hop-1 target j (a memory does not prime itself); returns one value per hit.
    """
    if hop1_vectors.shape[0] == 0 or hit_vectors.shape[0] == 0:
        return np.zeros(hit_vectors.shape[0])
    cosines = hit_vectors.astype(np.float64) @ hop1_vectors.astype(np.float64).T
    scale = HOP_ATTENUATION[1] * SEMANTIC_BOOST_MAX / (1.0 - SEMANTIC_COSINE_MIN)
    boosts = np.where((cosines >= SEMANTIC_COSINE_MIN) & ~same, scale * (np.minimum(cosines, 1.0) - SEMANTIC_COSINE_MIN), 0.0)
    return boosts @ (hop1_strength / SEMANTIC_BOOST_MAX)
