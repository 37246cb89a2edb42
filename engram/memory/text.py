"""Lexical recall: an inverted index with IDF-weighted term coverage.

score(doc, query) = sum of idf(t) over query terms t found in doc
                    / sum of idf(t) over all query terms,
with idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) (BM25's, always positive).
The score is in [0, 1]: 1 when the document has every query term, and rare terms
count more than common ones. Terms are lowercase runs of letters and digits.
Results are ordered by score descending, then id ascending, so that equal scores
never depend on insertion order.
"""

from __future__ import annotations

import math
import re

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class TextIndex:
    def __init__(self) -> None:
        self._postings: dict[str, dict[str, int]] = {}
        self._doc_terms: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._doc_terms)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        terms = tokenize(text)
        counts: dict[str, int] = {}
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
        for term, count in counts.items():
            self._postings.setdefault(term, {})[doc_id] = count
        self._doc_terms[doc_id] = tuple(counts)

    def remove(self, doc_id: str) -> None:
        for term in self._doc_terms.pop(doc_id, ()):
            posting = self._postings[term]
            del posting[doc_id]
            if not posting:
                del self._postings[term]

    def _idf(self, term: str) -> float:
        n = len(self._doc_terms)
        df = len(self._postings.get(term, ()))
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> dict[str, float]:
        """Score of every document sharing at least one term with ``query``."""
        terms = sorted(set(tokenize(query)))
        if not terms:
            return {}
        weights = {t: self._idf(t) for t in terms}
        total = sum(weights[t] for t in terms)
        found: dict[str, float] = {}
        for term in terms:
            for doc_id in self._postings.get(term, ()):
                found[doc_id] = found.get(doc_id, 0.0) + weights[term]
        return {doc_id: min(1.0, value / total) for doc_id, value in found.items()}
