"""The int8 candidate scan never changes a recall result.

Above APPROX_SCAN_ROWS_MIN rows, plain top-k recalls score int8 codes first and
re-score exactly only the rows whose error bound lets them reach the top k. This
test compares, on the same space, every such recall with the exact full scan
(forced by lowering nothing but calling the kernel directly): the same ids in the
same order with the same score bits, on random data, on near-duplicates that make
the bound work hardest, with time filters, and for the NumPy twin's bound too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram
from engram import _core
from engram.memory import space as space_mod

pytestmark = pytest.mark.kernel


def exact_top(sp, query: np.ndarray, k: int) -> list[tuple[str, int]]:
    view = sp._view()
    scores = _core.cosine_scores(view.matrix[: view.n], view.inv_norms[: view.n], query.reshape(1, -1))[0]
    idx, vals = _core.select_topk(scores, k, view.alive)
    pairs = sorted(((-float(v), view.row_ids[i]) for i, v in zip(idx.tolist(), vals.tolist())))[:k]
    return [(mid, np.float32(-neg).view(np.int32).item()) for neg, mid in pairs]


def test_int8_candidates_give_the_exact_answer(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = space_mod.APPROX_SCAN_ROWS_MIN + 500
    base = rng.standard_normal((n, 768), dtype=np.float32)
    # A block of near-duplicates around one direction: many rows within the bound.
    center = rng.standard_normal(768).astype(np.float32)
    base[:300] = center + 0.01 * rng.standard_normal((300, 768), dtype=np.float32)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None, durability="async")
        for start in range(0, n, 4096):
            sp.remember_many([{"content": f"m{i}", "embedding": base[i], "id": f"m{i:06d}"} for i in range(start, min(n, start + 4096))])
        assert sp._n >= space_mod.APPROX_SCAN_ROWS_MIN
        queries = [center, rng.standard_normal(768).astype(np.float32), base[4000] + 0.001, base[7] * 3.0]
        for q in queries:
            for k in (1, 10, 50):
                got = [(h.id, np.float32(h.score).view(np.int32).item()) for h in sp.recall(embedding=q, k=k)]
                want = [(mid, bits) for mid, bits in exact_top(sp, q, k)]
                # Hit scores are clamped to [0, 1] (a vector's cosine with itself can round
                # to 1.0000001); compare ids, and bits after the same clamp.
                assert [g[0] for g in got] == [w[0] for w in want]
                for (gid, gbits), (wid, wbits) in zip(got, want):
                    clamped = np.float32(min(1.0, max(0.0, float(np.int32(wbits).view(np.float32)))))
                    assert gbits == clamped.view(np.int32).item()


def test_bound_covers_the_quantisation_error() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((2000, 768), dtype=np.float32) * rng.uniform(0.01, 100, (2000, 1)).astype(np.float32)
    codes, scales = _core.quantize_rows(matrix)
    q = rng.standard_normal((3, 768), dtype=np.float32)
    approx = _core.approx_scores_batch(codes, scales, q)
    inv, q_inv = _core.row_inv_norms(matrix), _core.row_inv_norms(q)
    exact = (q.astype(np.float64) @ matrix.astype(np.float64).T) * inv[None, :] * q_inv[:, None]
    row_coeff, constant = _core.approx_bound_terms(q, q_inv)
    bound = (scales.astype(np.float64) * inv)[None, :] * row_coeff[:, None] + constant[:, None]
    error = np.abs(approx * inv[None, :] * q_inv[:, None] - exact)
    assert np.all(error <= bound)
    # the bound is not vacuous: the worst error uses a good part of it
    assert float(np.max(error / bound)) > 0.02


def test_codes_survive_a_checkpoint_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        sp.remember_many([{"content": f"m{i}", "embedding": rng.standard_normal(768)} for i in range(300)])
        sp.checkpoint()
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        n = sp._n
        codes, scales = _core.quantize_rows(np.ascontiguousarray(sp._matrix[:n]))
        assert np.array_equal(sp._codes[:n], codes) and np.array_equal(sp._scales[:n], scales)


@pytest.mark.parametrize("d", [768, 100])
def test_approx_scores_do_not_depend_on_tile_shape(d: int) -> None:
    """Every batch size and row count (full tiles of 4 queries, partial tiles, a last
    single query, many tiles, the last rows) scores each (row, query) pair with the same
    bits as that query alone; with the VNNI kernel those bits are the exact integer dot
    product of the codes, scaled."""
    if _core.IMPL == "python":
        pytest.skip("the NumPy twin leaves the order to BLAS (documented); the property is the compiled kernel's")
    rng = np.random.default_rng(d)
    matrix = rng.standard_normal((135, d), dtype=np.float32)
    codes, scales = _core.quantize_rows(matrix)
    queries = rng.standard_normal((33, d), dtype=np.float32)
    alone = np.stack([_core.approx_scores_batch(codes, scales, queries[j : j + 1])[0] for j in range(33)])
    for n in (1, 2, 3, 5, 64, 67, 135):
        for b in [*range(1, 18), 31, 32, 33]:
            got = _core.approx_scores_batch(np.ascontiguousarray(codes[:n]), scales[:n], queries[:b])
            assert got.view(np.int32).tolist() == alone[:b, :n].view(np.int32).tolist(), (n, b)
    if _core.approx_quantises_queries():
        q_codes, q_scales = _core.quantize_rows(queries)
        dots = (q_codes.astype(np.int64) @ codes.astype(np.int64).T).astype(np.float32)
        want = (dots * scales[None, :]) * q_scales[:, None]
        assert alone.view(np.int32).tolist() == want.view(np.int32).tolist()


def _candidates_by_sorting(approx, inv, scale_inv, q_inv, coeff, constant, k, mask):
    """approx_candidates' definition, by a full sort."""
    allowed = np.ones(len(approx), bool) if mask is None else mask
    cosine = approx * inv * np.float32(q_inv)
    bound = scale_inv * np.float32(coeff) + np.float32(constant)
    lower = np.sort((cosine - bound)[allowed])[::-1]
    if len(lower) < k:
        return np.flatnonzero(allowed)
    return np.flatnonzero(allowed & (cosine + bound >= lower[k - 1]))


@pytest.mark.parametrize("seed", range(6))
def test_approx_candidates_match_their_definition(seed: int) -> None:
    from engram._core import _ref

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    # Few distinct values: many ties at the k-th lower bound.
    approx = (rng.integers(-40, 40, n) / 8).astype(np.float32)
    inv = rng.uniform(0.5, 2.0, n).astype(np.float32)
    scale_inv = rng.uniform(0.001, 0.01, n).astype(np.float32)
    q_inv, coeff, constant = float(np.float32(rng.uniform(0.5, 2))), float(rng.uniform(0.5, 3)), float(rng.uniform(0, 0.01))
    for mask in (None, rng.random(n) < 0.3, np.zeros(n, bool)):
        for k in (1, 3, 10, n, n + 5):
            want = _candidates_by_sorting(approx, inv, scale_inv, q_inv, coeff, constant, k, mask).tolist()
            assert _ref.approx_candidates(approx, inv, scale_inv, q_inv, coeff, constant, k, mask).tolist() == want
    with pytest.raises(ValueError, match="mask"):
        _ref.approx_candidates(approx, inv, scale_inv, q_inv, coeff, constant, 3, np.ones(n + 1, bool))


def test_scores_rows_equal_a_full_scan() -> None:
    from engram._core import _ref

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((300, 768), dtype=np.float32)
    inv = _core.row_inv_norms(matrix)
    query = rng.standard_normal(768).astype(np.float32)
    q_inv = _core.row_inv_norms(query.reshape(1, -1))[0]
    full = _core.cosine_scores(matrix, inv, query.reshape(1, -1), np.array([q_inv], np.float32))[0]
    rows = np.array([299, 0, 7, 8, 9, 10, 150, 7], np.int64)
    got = _ref.scores_rows(matrix, inv, rows, query, q_inv)
    assert got.view(np.int32).tolist() == full[rows].view(np.int32).tolist()
    with pytest.raises(ValueError, match="rows"):
        _ref.scores_rows(matrix, inv, np.array([300], np.int64), query, q_inv)


def test_int8_screen_with_a_time_filter_gives_the_exact_answer(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    rng = np.random.default_rng(12)
    n = space_mod.APPROX_SCAN_ROWS_MIN + 100
    base = rng.standard_normal((n, 768), dtype=np.float32)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None, durability="async", effects=())
        for start in range(0, n, 4096):
            sp.remember_many([{"content": f"m{i}", "embedding": base[i], "id": f"m{i:06d}", "when": t0 + timedelta(minutes=i)}
                              for i in range(start, min(n, start + 4096))])
        view = sp._view()
        created = view.created[: view.n]
        target = n // 2
        query = base[target] + 0.3 * rng.standard_normal(768).astype(np.float32)
        after, before = t0 + timedelta(minutes=n // 4), t0 + timedelta(minutes=3 * n // 4)
        hits = sp.recall(embedding=query, k=10, after=after, before=before)
        scores = _core.cosine_scores(view.matrix[: view.n], view.inv_norms[: view.n], query.reshape(1, -1))[0]
        allowed = view.alive & (created >= int(after.timestamp() * 1e9)) & (created < int(before.timestamp() * 1e9))
        order = sorted((-float(scores[i]), view.row_ids[i]) for i in np.flatnonzero(allowed))[:10]
        assert [h.id for h in hits] == [mid for _, mid in order]
        assert f"m{target:06d}" in [h.id for h in hits]


@pytest.mark.parametrize("seed", range(6))
def test_screen_batch_matches_its_definition(seed: int) -> None:
    """The batch kernel keeps, for every query, the rows approx_candidates keeps over the
    rows its time filter allows, scored like scores_rows; and flags a query whose
    candidates exceed a quarter of the rows instead of scoring them. Seeds 4 and 5 are
    large enough for the kernel's threads and give one query hundreds of candidates
    (its buffer grows)."""
    from engram._core import _ref

    rng = np.random.default_rng(100 + seed)
    big = seed >= 4
    n, b = (30000, 9) if big else (int(rng.integers(200, 2500)), int(rng.integers(4, 12)))
    matrix = rng.standard_normal((n, 64), dtype=np.float32)
    matrix[: n // 3] = matrix[0] + 0.01 * rng.standard_normal((n // 3, 64), dtype=np.float32)  # near-ties
    codes, scales = _core.quantize_rows(matrix)
    inv = _core.row_inv_norms(matrix)
    queries = rng.standard_normal((b, 64), dtype=np.float32)
    queries[0] = matrix[0]
    q_inv = _core.row_inv_norms(queries)
    approx = _core.approx_scores_batch(codes, scales, queries)
    coeff, constant = _core.approx_bound_terms(queries, q_inv)
    ks = rng.integers(1, 60, b).astype(np.int64)
    ks[-1] = n + 3  # more than the rows: every allowed row
    if big:
        ks[1] = 700
    created = rng.integers(0, 1000, n).astype(np.int64)
    after = rng.integers(-5, 500, b).astype(np.int64)
    before = after + rng.integers(0, 900, b)
    after[0], before[0] = np.iinfo(np.int64).min, np.iinfo(np.int64).max  # no time filter, as recall passes it
    alive = rng.random(n) < 0.9
    args = (approx, inv, scales * inv, q_inv, coeff, constant, ks, after, before, alive, created, matrix, queries)
    offsets, rows, scores, full = _core.screen_batch(*args)
    for j in range(b):
        mask = alive & (created >= after[j]) & (created < before[j])
        want = _ref.approx_candidates(approx[j], inv, scales * inv, float(q_inv[j]), float(coeff[j]), float(constant[j]), int(ks[j]), mask)
        got = rows[offsets[j] : offsets[j + 1]]
        if want.size * 4 > n:
            assert full[j] and got.size == 0
            continue
        assert not full[j]
        assert got.tolist() == want.tolist()
        exact = _core.cosine_scores(matrix, inv, queries[j : j + 1], q_inv[j : j + 1])[0]
        assert scores[offsets[j] : offsets[j + 1]].view(np.int32).tolist() == exact[want].view(np.int32).tolist()
    twin = _ref.screen_batch(*args)
    for got_part, want_part in zip((offsets, rows, scores, full), twin):
        assert np.asarray(got_part).tolist() == np.asarray(want_part).tolist()
    assert full[0] and not full.all()  # query 0 sits among the near-ties: it falls back; others do not
    if big:
        assert offsets[2] - offsets[1] > 700  # the candidate buffer grew past its first 256 rows


def test_residual_bound_covers_integer_scores_and_is_tighter() -> None:
    """|exact cosine - approximate cosine| <= r_i * row_coeff_j + constant_j when rows and
    queries are both quantised and multiplied exactly (the VNNI kernel; emulated in
    float64 otherwise), over rows of very different scales; and on random data the
    bound is well under the per-coordinate one."""
    from engram.memory import residuals

    rng = np.random.default_rng(21)
    matrix = rng.standard_normal((3000, 768), dtype=np.float32) * rng.uniform(0.01, 100, (3000, 1)).astype(np.float32)
    matrix[:200] = matrix[0] + 1e-3 * rng.standard_normal((200, 768), dtype=np.float32)
    codes, scales = _core.quantize_rows(matrix)
    queries = rng.standard_normal((6, 768), dtype=np.float32)
    queries[0] = matrix[0]
    q_codes, q_scales = _core.quantize_rows(queries)
    inv, q_inv = _core.row_inv_norms(matrix), _core.row_inv_norms(queries)
    integer = (q_codes.astype(np.int64) @ codes.astype(np.int64).T).astype(np.float64)
    approx = integer * scales[None, :] * q_scales[:, None]
    if _core.approx_quantises_queries():
        approx = _core.approx_scores_batch(codes, scales, queries).astype(np.float64)
    exact = (queries.astype(np.float64) @ matrix.astype(np.float64).T) * inv[None, :] * q_inv[:, None]
    approx_cosine = (approx.astype(np.float32) * inv[None, :] * q_inv[:, None]).astype(np.float64)
    r = residuals.row_residuals(matrix, codes, scales).astype(np.float64)
    row_coeff, constant = residuals.query_terms(queries, q_codes, q_scales)
    bound = r[None, :] * row_coeff[:, None] + constant[:, None]
    error = np.abs(approx_cosine - exact)
    assert np.all(error <= bound)
    assert float(np.max(error / bound)) > 0.05  # not vacuous
    old_coeff, old_constant = _core.approx_bound_terms(queries, q_inv)
    per_coordinate = (scales * inv)[None, :] * old_coeff[:, None] + old_constant[:, None]
    assert float(np.mean(bound)) < 0.7 * float(np.mean(per_coordinate))


def test_row_residuals_follow_appends_and_layouts() -> None:
    from engram.memory import residuals

    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((50, 768), dtype=np.float32)
    codes, scales = _core.quantize_rows(matrix)
    cache = residuals.RowResiduals()
    first = cache.of(0, matrix, codes, scales, 20).copy()
    both = cache.of(0, matrix, codes, scales, 50)
    assert both[:20].tolist() == first.tolist()
    assert both.tolist() == residuals.row_residuals(matrix, codes, scales).tolist()
    shuffled = np.ascontiguousarray(matrix[::-1])
    s_codes, s_scales = _core.quantize_rows(shuffled)
    assert cache.of(1, shuffled, s_codes, s_scales, 50).tolist() == residuals.row_residuals(shuffled, s_codes, s_scales).tolist()
    assert both.tolist() == residuals.row_residuals(matrix, codes, scales).tolist()  # the old layout's values kept


def test_compiled_row_residuals_match_the_definition() -> None:
    from engram.memory import residuals

    rng = np.random.default_rng(9)
    matrix = rng.standard_normal((300, 100), dtype=np.float32) * rng.uniform(1e-3, 1e3, (300, 1)).astype(np.float32)
    matrix[5] = 0.0
    codes, scales = _core.quantize_rows(matrix)
    want = residuals.row_residuals(matrix, codes, scales)
    got = residuals._compute(matrix, codes, scales)
    assert want[5] == 0.0 or want[5] == np.nextafter(np.float32(0), np.float32(1))
    assert np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32)).max() <= 1


def test_screened_recalls_stay_exact_while_writers_grow_the_space(tmp_path: Path) -> None:
    """Recall batches on several threads while other threads append rows (the matrix and
    the residual cache grow under them): every screened recall returns the exact answer,
    which the appended rows, far from every query, never change."""
    import threading

    rng = np.random.default_rng(31)
    n = space_mod.APPROX_SCAN_ROWS_MIN + 300
    centers = rng.standard_normal((8, 768), dtype=np.float32)
    base = np.repeat(centers, n // 8 + 1, axis=0)[:n] + 0.6 * rng.standard_normal((n, 768), dtype=np.float32)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None, durability="async", effects=())
        sp.remember_many([{"content": f"m{i}", "embedding": base[i], "id": f"m{i:06d}"} for i in range(n)])
        queries = [{"embedding": centers[j] + 0.1 * rng.standard_normal(768).astype(np.float32), "k": 10} for j in range(8)]
        want = [[h.id for h in hits] for hits in sp.recall_many(queries)]
        far = -np.repeat(centers.sum(axis=0, keepdims=True), 4000, axis=0) + 3.0 * rng.standard_normal((4000, 768), dtype=np.float32)
        errors: list[str] = []

        def write(part: int) -> None:
            for start in range(part * 2000, (part + 1) * 2000, 100):
                sp.remember_many([{"content": f"far{i}", "embedding": far[i]} for i in range(start, start + 100)])

        def read() -> None:
            for _ in range(15):
                got = [[h.id for h in hits] for hits in sp.recall_many(queries)]
                if got != want:
                    errors.append(f"{got} != {want}")

        threads = [threading.Thread(target=write, args=(p,)) for p in range(2)] + [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(sp) == n + 4000
        assert [[h.id for h in hits] for hits in sp.recall_many(queries)] == want
