"""asv benchmarks for cluster membership: wire codec costs and simulated detection.

``WireCodec`` times encoding and decoding of a full gossip packet (compound of rumours,
CRC) and LZW decoding of a Serf-sized push/pull, reporting P50/P95/P99 in ms.
``Detection`` runs the deterministic simulator with memberlist's LAN timings (100 nodes,
1% loss, 10 crashes over 10 simulated minutes) and reports failure-detection times in
seconds, to compare with memberlist's published 9.86 s p50 / 11.98 s p99, and the wall
time of the run, for the clock-aligned probe order and for memberlist's shuffled one.
"""

from __future__ import annotations

import time

from engram.net.swim import codec, lzw
from engram.net.swim import messages as m
from engram.testing import sim

from ._percentiles import PERCENTILES, sample

VSN = bytes([1, 5, 2, 2, 5, 4])


def _packet() -> bytes:
    parts = [codec.encode_message(m.Ping(1, "node-001", b"\x0a\x00\x00\x01", 7946, "node-002"))]
    for i in range(12):
        parts.append(codec.encode_message(m.Alive(i, f"node-{i:03d}", b"\x0a\x00\x00\x02", 7946, b"", VSN)))
    return codec.encode_packet(codec.encode_compound(parts), crc=True)


class WireCodec:
    params = (PERCENTILES,)
    param_names = ["stat"]
    timeout = 300

    def setup_cache(self):
        packet = _packet()
        nodes = tuple(m.PushNodeState(f"node-{i:03d}", b"\x0a\x00\x00\x02", 7946, b"\xff\x80", i,
                                      m.NodeState.ALIVE, VSN) for i in range(100))
        compressed = lzw.compress(codec.encode_stream(m.PushPull(False, nodes)))
        return {
            "decode_packet": sample(lambda: codec.decode_packet(packet), 2000),
            "encode_packet": sample(_packet, 2000),
            "lzw_decode_push_pull_100": sample(lambda: lzw.decompress(compressed), 200),
        }

    def track_decode_packet_ms(self, cache, stat):
        return cache["decode_packet"][stat]

    def track_encode_packet_ms(self, cache, stat):
        return cache["encode_packet"][stat]

    def track_lzw_decode_push_pull_100_ms(self, cache, stat):
        return cache["lzw_decode_push_pull_100"][stat]


class Detection:
    """Both probe orders on the same seed: Engram's clock-aligned ring (the default) and
    memberlist's shuffled list (aligned_probing off)."""

    params = (("aligned", "shuffled"),)
    param_names = ["probing"]
    timeout = 900

    def setup_cache(self):
        cache = {}
        for probing in self.params[0]:
            options = sim.draw_options(101, nodes=100, preset="lan", duration_ms=600_000, loss=0.01,
                                       delay_ms_min=1, delay_ms_max=3, duplicate=0.0, reorder=0.0,
                                       partition="none", crashes=10, restart=True, stalls=0, joins=0,
                                       probing=probing)
            started = time.perf_counter()
            result = sim.Simulation(options).run()
            wall_s = time.perf_counter() - started
            lasts = sorted(d[3] for d in result.detections if d[3] is not None)
            cache[probing] = {"wall_s": wall_s, "p50_s": lasts[len(lasts) // 2] / 1000, "max_s": lasts[-1] / 1000}
        return cache

    def track_detection_all_nodes_p50_s(self, cache, probing):
        return cache[probing]["p50_s"]

    def track_detection_all_nodes_max_s(self, cache, probing):
        return cache[probing]["max_s"]

    def track_sim_100_nodes_10_min_wall_s(self, cache, probing):
        return cache[probing]["wall_s"]
