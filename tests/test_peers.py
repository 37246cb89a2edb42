"""``python -m engram.bench.peers`` runs every peer on the same data and says which are missing.

How: at a tiny size (n = 400, 20 queries) the whole comparison runs in a few seconds.
Exact searchers must score recall@10 = 1.0 against the independent exact answer
(engram's recall is exact, numpy is the reference); sqlite only inserts; every row has a
positive insert rate and a disk size; a peer whose import fails is reported as missing
instead of failing the run; the CLI prints the table and exits 0. The exact top-k helper
is checked against a plain argsort, ties included.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engram.bench import peers


def test_exact_topk_matches_argsort_with_ties() -> None:
    data, queries = peers.make_data(300, 5, dimension=16, seed=3)
    data[7] = data[3]  # an exact tie: the smaller index must come first
    got = peers.exact_topk(data, queries, k=10, block=64)
    for q, row in zip(queries, got):
        scores = data @ q
        want = np.lexsort((np.arange(len(data)), -scores))[:10]
        assert row.tolist() == want.tolist()


def test_peers_tiny_run_all_present_or_reported_missing(tmp_path) -> None:
    result = peers.run_peers(n=400, queries=20, batch=100, dimension=64, directory=str(tmp_path))
    assert set(result["peers"]) | set(result["missing"]) == set(peers.PEERS)
    for name in ("engram", "numpy", "sqlite"):
        assert name in result["peers"], result["missing"]
    for name, row in result["peers"].items():
        assert row["insert_per_s"] > 0, name
        assert row["disk_bytes"] > 0, name
    assert result["peers"]["engram"]["recall_at_10"] == 1.0
    assert result["peers"]["numpy"]["recall_at_10"] == 1.0
    assert "recall_at_10" not in result["peers"]["sqlite"]
    if "chromadb" in result["peers"]:
        assert 0.5 <= result["peers"]["chromadb"]["recall_at_10"] <= 1.0
    table = peers.format_table(result)
    for name in peers.PEERS:
        assert f"| {name}" in table
    assert "engram/sqlite inserts per s" in table


def test_missing_peer_is_reported_not_fatal(tmp_path, monkeypatch) -> None:
    def absent(*_a, **_k):
        raise ModuleNotFoundError("No module named 'chromadb'", name="chromadb")

    monkeypatch.setitem(peers.RUNNERS, "chromadb", absent)
    result = peers.run_peers(n=50, queries=3, batch=25, dimension=8, only=["chromadb", "numpy"], directory=str(tmp_path))
    assert "chromadb" in result["missing"]
    assert "numpy" in result["peers"]
    assert "| chromadb | missing |" in peers.format_table(result)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="n must be"):
        peers.run_peers(n=3)
    with pytest.raises(ValueError, match="unknown peer"):
        peers.run_peers(n=100, only=["faiss"])


def test_cli_prints_table(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "engram.bench.peers", "--n", "200", "--queries", "5", "--dimension", "32",
                           "--only", "engram", "--only", "sqlite", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| engram" in proc.stdout
    assert "| sqlite" in proc.stdout
