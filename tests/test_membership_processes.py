"""Real Engram membership processes on loopback form a cluster fast and detect a kill.

How: three ``python -m engram.net._trio.node`` processes on 127.0.0.61-63 (one port each,
UDP and TCP), each writing its member list to a status file. The cluster must form (every
node sees all three alive) in under 2 s after the last start; after SIGKILL of one node
the other two must mark it dead within 7 s (LAN timings: 3 nodes gives a 4 s suspicion
timeout). A SIGTERMed node leaves gracefully and is seen as "left". Processes are killed
by pid at the end whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engram.testing.processes import Cluster, wait_for

PORT = 27961
NODES = {"p1": f"127.0.0.61:{PORT}", "p2": f"127.0.0.62:{PORT}", "p3": f"127.0.0.63:{PORT}"}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


def _sees(cluster: Cluster, viewer: str, names: list[str], state: str) -> bool:
    view = cluster.engram_view(viewer)
    return all(view.get(n, {}).get("state") == state for n in names)


def test_three_nodes_form_fast_and_detect_a_kill(cluster: Cluster) -> None:
    cluster.start_engram("p1", NODES["p1"])
    cluster.start_engram("p2", NODES["p2"], [NODES["p1"]])
    cluster.start_engram("p3", NODES["p3"], [NODES["p1"]])
    # Interpreter start-up is not membership: time from when every node is running.
    wait_for(lambda: all(cluster.engram_view(n) for n in NODES), 20)
    started = time.monotonic()
    wait_for(lambda: all(_sees(cluster, n, list(NODES), "alive") for n in NODES), 10, 0.05)
    formed_s = time.monotonic() - started
    assert formed_s < 2.0, f"cluster took {formed_s:.2f} s to form"

    cluster.kill("p3")
    detected_s = wait_for(lambda: _sees(cluster, "p1", ["p3"], "dead") and _sees(cluster, "p2", ["p3"], "dead"), 15)
    assert detected_s < 7.0, f"kill detected after {detected_s:.1f} s"

    cluster.terminate("p2")
    wait_for(lambda: _sees(cluster, "p1", ["p2"], "left"), 10)
    assert _sees(cluster, "p1", ["p1"], "alive")
