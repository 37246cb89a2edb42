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
  like a semantic prime. A recall pairs with at most the 16 memories recalled most
  recently within those 30 s (a working-memory span): at an agent's pace that is
  every one of them, and a space serving many recalls a second does not pay for
  thousands of pairs per recall. For the same reason a recall primes at most its 16
  strongest associates (highest P(B|A), then id), and a memory holds at most its 16
  latest associative primes: a space answering hundreds of recalls a second over a
  few hundred recurring memories made every one of them an associate of every
  other, and each hit then summed hundreds of primes (measured: 34 associates per
  recall, 270 live primes per target, 30 us per hit).
- Repetition priming (Tulving & Schacter 1990): +5% per earlier exposure (the
  memory's access count), at most 30%.

Combination (saturating, never above 1):
      priming = 1 - exp(-(semantic + associative + repetition))
      confidence' = min(1, confidence x (1 + priming))

Evaluation is lazy, so that priming adds no pass over the matrix (finding each
recalled memory's neighbours eagerly doubled the cost of recall): a prime only
matters to the hits of a later recall, so it is computed for them, from the
recalled memories of the last 6 s (20 half-lives). Consequences, stated plainly:
the "10 neighbours" cap and lateral inhibition apply among the hits of the later
recall (the primed candidates competing now), not among the source's neighbours
in the whole space; hop 2 relays through hits primed at hop 1. Only the 64 most
recent recalls act as sources (a working-memory span): at an agent's pace that is
all of the last 6 s, while a space answering hundreds of recalls a second does not
score every hit against a thousand sources. Priming state lives
in memory only: it lasts seconds and is not written to the WAL; a reopened space
starts unprimed.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque

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
ASSOCIATIVE_PARTNERS_MAX = 16
ASSOCIATIVE_BOOST_MAX = 0.15
ASSOCIATIVE_PRIMED_MAX = 16  # associates one recall primes
ASSOCIATIVE_PRIMES_HELD = 16  # latest associative primes a memory holds
REPETITION_STEP = 0.05
REPETITION_MAX = 0.30
# After 20 half-lives (6 s) a prime is below 1e-6 of its start: forget it.
PRIME_LIFETIME_NS = 20 * HALF_LIFE_NS
SOURCES_MAX = 64
PAIRS_MAX = 100_000  # bound on the associative co-recall table
PRUNE_INTERVAL_NS = 2 * NS_PER_S


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
    if since_ns < 0 or since_ns > PRIME_LIFETIME_NS:
        # A prime from the clock's future (the clock moved back) does not act; one older
        # than its lifetime is treated as gone whether or not it was pruned yet, so
        # results never depend on when pruning ran.
        return 0.0
    return boost * 0.5 ** (since_ns / HALF_LIFE_NS)


def repetition(access_count: int) -> float:
    return min(REPETITION_MAX, REPETITION_STEP * access_count)


def combine(semantic_sum: float, associative: float, repeated: float) -> float:
    """The saturating combination: 1 - exp(-(tanh(semantic) + associative + repetition))."""
    return 1.0 - math.exp(-(math.tanh(semantic_sum) + associative + repeated))


class PrimingState:
    """A space's live primes. The space holds its lock while calling these."""

    def __init__(self) -> None:
        # (t0, id) of recalled embedded memories, oldest first, the SOURCES_MAX latest
        self.sources: deque[tuple[int, str]] = deque(maxlen=SOURCES_MAX)
        self.associative: dict[str, deque[tuple[int, float]]] = {}  # target -> its latest primes, oldest first
        self.recent: "OrderedDict[str, int]" = OrderedDict()  # id -> when last recalled, least recent first
        self.recalls: dict[str, int] = {}
        self.co_recalls: dict[str, dict[str, int]] = {}  # a -> b -> times recalled within 30 s of each other
        self.strong: dict[str, set[str]] = {}  # a -> the b with co_recalls[a][b] >= ASSOCIATIVE_MIN_CO_RECALLS
        self.pairs = 0
        self.pruned_ns: int | None = None

    def prune(self, now_ns: int) -> None:
        """Drop expired primes (memory only: ``decayed`` already ignores them); at most every 2 s."""
        if self.pruned_ns is not None and 0 <= now_ns - self.pruned_ns < PRUNE_INTERVAL_NS:
            return
        self.pruned_ns = now_ns
        self.sources = deque(((t0, m) for t0, m in self.sources if now_ns - t0 <= PRIME_LIFETIME_NS), maxlen=SOURCES_MAX)
        for target in list(self.associative):
            alive = deque(((t0, b) for t0, b in self.associative[target] if now_ns - t0 <= PRIME_LIFETIME_NS), maxlen=ASSOCIATIVE_PRIMES_HELD)
            if alive:
                self.associative[target] = alive
            else:
                del self.associative[target]

    def recalled(self, memory_id: str, now_ns: int, embedded: bool) -> None:
        """Note that ``memory_id`` was the top hit of a recall at ``now_ns``."""
        self.prune(now_ns)
        if embedded:
            self.sources.append((now_ns, memory_id))
        # Associative: one co-recall per pair per recall event, within 30 s.
        while self.recent:
            oldest, t0 = next(iter(self.recent.items()))
            if now_ns - t0 <= ASSOCIATIVE_WINDOW_NS:
                break
            del self.recent[oldest]
        partners = []
        for other, t0 in reversed(self.recent.items()):
            if len(partners) == ASSOCIATIVE_PARTNERS_MAX:
                break
            if other != memory_id and 0 <= now_ns - t0:
                partners.append(other)
        partners.sort()
        self.recalls[memory_id] = self.recalls.get(memory_id, 0) + 1
        for other in partners:
            for a, b in ((memory_id, other), (other, memory_id)):
                row = self.co_recalls.setdefault(a, {})
                if b in row:
                    row[b] += 1
                elif self.pairs < PAIRS_MAX:
                    row[b] = 1
                    self.pairs += 1
                else:
                    continue
                if row[b] >= ASSOCIATIVE_MIN_CO_RECALLS:
                    self.strong.setdefault(a, set()).add(b)
        self.recent[memory_id] = now_ns
        self.recent.move_to_end(memory_id)
        counts = self.co_recalls.get(memory_id, {})
        strongest = heapq.nsmallest(ASSOCIATIVE_PRIMED_MAX, self.strong.get(memory_id, ()), key=lambda b: (-counts[b], b))
        for b in sorted(strongest):
            strength = counts[b] / self.recalls[memory_id]
            primes = self.associative.get(b)
            if primes is None:
                primes = self.associative[b] = deque(maxlen=ASSOCIATIVE_PRIMES_HELD)
            # Primes past their lifetime count zero (decayed): drop them from the front
            # here, so a busy target's deque holds only live ones between prunes.
            while primes and now_ns - primes[0][0] > PRIME_LIFETIME_NS:
                primes.popleft()
            primes.append((now_ns, ASSOCIATIVE_BOOST_MAX * min(1.0, strength)))

    def forget(self, memory_id: str) -> None:
        """Drop everything kept about a forgotten memory (its counts would otherwise stay
        forever: the soak found this state growing with every id ever recalled)."""
        self.recalls.pop(memory_id, None)
        row = self.co_recalls.pop(memory_id, None)
        self.strong.pop(memory_id, None)
        if row:
            self.pairs -= len(row)
            for other in row:
                back = self.co_recalls.get(other)
                if back is not None and back.pop(memory_id, None) is not None:
                    self.pairs -= 1
                    if not back:
                        del self.co_recalls[other]
                other_strong = self.strong.get(other)
                if other_strong is not None:
                    other_strong.discard(memory_id)
                    if not other_strong:
                        del self.strong[other]
        self.associative.pop(memory_id, None)
        self.sources = deque(((t0, m) for t0, m in self.sources if m != memory_id), maxlen=SOURCES_MAX)

    def active_sources(self, now_ns: int) -> list[tuple[int, str]]:
        """Recalled memories whose primes still act at ``now_ns``, in (time, id) order."""
        return sorted((t0, m) for t0, m in self.sources if 0 <= now_ns - t0 <= PRIME_LIFETIME_NS)

    def factor(self, memory_id: str, now_ns: int, access_count: int, semantic_sum: float) -> float:
        """1 + priming for one hit at ``now_ns``; ``semantic_sum`` from ``semantic_sums``."""
        # decayed() inlined: a busy space reads dozens of primes per hit. Same terms in
        # the same order as sum(decayed(...)), so the same bits.
        associative = 0.0
        for t0, boost in self.associative.get(memory_id, ()):
            since = now_ns - t0
            if 0 <= since <= PRIME_LIFETIME_NS:
                associative += boost * 0.5 ** (since / HALF_LIFE_NS)
        return 1.0 + combine(semantic_sum, associative, repetition(access_count))


def semantic_sums(hit_ids: list[str], sources: list[tuple[int, str]], to_sources: np.ndarray,
                  between_hits: np.ndarray, now_ns: int) -> np.ndarray:
    """The decayed semantic boost of each hit of a recall at ``now_ns``.

    ``to_sources[i, j]`` is the cosine of hit i to source j (sources in (time, id)
    order), ``between_hits[i, h]`` the cosine between hits i and h. Hop 1: each source
    primes the hits with cosine >= 0.6 to it (not itself), at most its 10 most similar,
    boosts laterally inhibited among them, skipping a hit that accepted a prime less
    than 50 ms before. Hop 2: each hop-1-primed hit n relays to every other hit h with
    cosine >= 0.6 at attenuation 0.5, scaled by n's own current boost / 0.15.
    """
    k = len(hit_ids)
    hop1 = np.zeros(k)
    last: list[int | None] = [None] * k
    reaching = to_sources >= SEMANTIC_COSINE_MIN
    # Only sources that reach some hit can prime (or reset a refractory period).
    for j in np.nonzero(reaching.any(axis=0))[0].tolist():
        t0, source = sources[j]
        targets = [i for i in np.nonzero(reaching[:, j])[0].tolist() if hit_ids[i] != source]
        targets.sort(key=lambda i: (-float(to_sources[i, j]), hit_ids[i]))
        targets = targets[:NEIGHBOURS_MAX]
        boosts = inhibited([semantic_boost(float(to_sources[i, j]), 1) for i in targets])
        for i, boost in zip(targets, boosts):
            previous = last[i]
            if previous is not None and 0 <= t0 - previous < REFRACTORY_NS:
                continue
            if boost <= 0.0:
                continue
            last[i] = t0
            hop1[i] += decayed(boost, now_ns - t0)
    out = hop1.copy()
    if k > 1 and np.any(hop1 > 0):
        scale = HOP_ATTENUATION[1] * SEMANTIC_BOOST_MAX / (1.0 - SEMANTIC_COSINE_MIN)
        relay = np.where(between_hits >= SEMANTIC_COSINE_MIN, scale * (np.minimum(between_hits, 1.0) - SEMANTIC_COSINE_MIN), 0.0)
        np.fill_diagonal(relay, 0.0)
        out += relay @ (hop1 / SEMANTIC_BOOST_MAX)  # relay[h, n]: n (primed) relays to h
    return out
