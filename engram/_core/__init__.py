"""Engram's kernels: compiled by default, NumPy/pure-Python twins on request.

``ENGRAM_PURE=1`` in the environment forces the twins of ``_ref.py``; otherwise the
compiled kernels are required, and a missing build is an ImportError that says how
to fix it, never a silent fallback to the slow path. ``IMPL`` names what is in use.
"""

from __future__ import annotations

import os

# OpenMP threads that finish a scan spin-wait for the next one by default (libgomp's
# active policy, read once when the runtime loads, i.e. before the kernels below are
# imported). On a small machine that spin takes the core the server's event loop and
# the other writers need: measured here under load, a batch of 16 recalls at 10k rows
# cost 1.03 ms of process CPU per query with spinning and 0.51 ms without. A user's
# own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engram._core._common import (
    EmbeddingValueError,
    HEADER_BYTES,
    PAYLOAD_BYTES_MAX,
    RecordChecksumError,
    RecordError,
    RecordTruncatedError,
)
from engram._core._ref import APPROX_BOUND_FACTOR, approx_bound_terms

__all__ = [
    "IMPL",
    "HEADER_BYTES",
    "PAYLOAD_BYTES_MAX",
    "RecordError",
    "RecordChecksumError",
    "RecordTruncatedError",
    "crc32c",
    "encode_record",
    "encode_records_into",
    "decode_record",
    "topk_cosine",
    "cosine_scores",
    "select_topk",
    "topk_cosine_batch",
    "row_inv_norms",
    "embedding_f32",
    "stack_rows_f32",
    "float_list_f32",
    "float_array_text",
    "prepare_rows",
    "remember_payload",
    "batch_pairs",
    "EmbeddingValueError",
    "quantize_rows",
    "lsh_keys",
    "pair_scores",
    "dedup_matches",
    "slot_insert",
    "base_index",
    "approx_scores_batch",
    "screen_batch",
    "approx_quantises_queries",
    "APPROX_BOUND_FACTOR",
    "approx_bound_terms",
    "linkage",
    "cosine_distances",
]

if os.environ.get("ENGRAM_PURE") == "1":
    from engram._core._ref import (
        approx_quantises_queries,
        approx_scores_batch,
        screen_batch,
        dedup_matches,
        embedding_f32,
        stack_rows_f32,
        float_array_text,
        float_list_f32,
        lsh_keys,
        batch_pairs,
        prepare_rows,
        remember_payload,
        row_inv_norms,
        pair_scores,
        quantize_rows,
        slot_insert,
        base_index,
        cosine_scores,
        crc32c,
        decode_record,
        encode_record,
        encode_records_into,
        select_topk,
        topk_cosine,
        topk_cosine_batch,
    )
    from engram._core._ref import cosine_distances, linkage

    IMPL = "python"
else:
    try:
        from engram._core._topk import approx_quantises_queries, approx_scores_batch, cosine_scores, screen_batch, select_topk, topk_cosine, topk_cosine_batch
        from engram._core._walcodec import crc32c, decode_record, encode_record, encode_records_into
        from engram._core._dedup import base_index, dedup_matches, lsh_keys, pair_scores, quantize_rows, slot_insert
        from engram._core._linkage import cosine_distances, linkage
        from engram._core._store import batch_pairs, embedding_f32, prepare_rows, remember_payload, row_inv_norms, stack_rows_f32
        from engram._core._json import float_array_text, float_list_f32
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "engram's compiled kernels are not built: reinstall with `pip install .` "
            "(needs a C compiler), or set ENGRAM_PURE=1 to run on the slower twins"
        ) from exc
    IMPL = "compiled"
