"""The retransmit-limited broadcast queue (memberlist queue.go, TransmitLimitedQueue).

Each rumour is about one member; a newer rumour about the same member replaces the older
one. Rumours sent the fewest times go first (newest first among equals) and each is sent
``retransmit_mult x ceil(log10(n + 1))`` times, then dropped. Ordering uses only counters,
never hashing, so a run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BroadcastQueue", "retransmit_limit"]


def retransmit_limit(retransmit_mult: int, node_count: int) -> int:
    return retransmit_mult * int(math.ceil(math.log10(node_count + 1)))


@dataclass(slots=True)
class _Rumour:
    node: str
    data: bytes
    transmits: int
    order: int


class BroadcastQueue:
    __slots__ = ("_by_node", "_order", "finished")

    # A bound on queued rumours; past it the most-sent ones go first (drop-oldest policy).
    RUMOURS_MAX = 4096

    def __init__(self) -> None:
        self._by_node: dict[str, _Rumour] = {}
        self._order = 0
        # Names of members whose rumour finished (sent its limit) since last cleared;
        # lets a leaving node know its dead rumour went out.
        self.finished: list[str] = []

    def __len__(self) -> int:
        return len(self._by_node)

    def __contains__(self, node: str) -> bool:
        return node in self._by_node

    def queue(self, node: str, data: bytes) -> None:
        self._order += 1
        self._by_node.pop(node, None)
        self._by_node[node] = _Rumour(node, data, 0, self._order)
        if len(self._by_node) > self.RUMOURS_MAX:
            worst = max(self._by_node.values(), key=lambda r: (r.transmits, -r.order))
            del self._by_node[worst.node]

    @property
    def order(self) -> int:
        """A counter that grows with every queued rumour (for ``newest``)."""
        return self._order

    def newest(self, after_order: int, per_part_overhead_bytes: int, bytes_available: int) -> list[bytes]:
        """Rumours queued after ``after_order``, newest first, that fit in ``bytes_available``;
        not counted as transmits (an extra, immediate push of fresh news)."""
        out: list[bytes] = []
        spent = 0
        for rumour in sorted(self._by_node.values(), key=lambda r: -r.order):
            if rumour.order <= after_order or len(out) >= 255 - 1:
                break
            cost = per_part_overhead_bytes + len(rumour.data)
            if spent + cost > bytes_available:
                continue
            spent += cost
            out.append(rumour.data)
        return out

    def take(self, per_part_overhead_bytes: int, bytes_available: int, limit: int) -> list[bytes]:
        """Rumours that fit in ``bytes_available``; each counts as one more transmit."""
        if not self._by_node or bytes_available <= per_part_overhead_bytes:
            return []
        out: list[bytes] = []
        spent = 0
        for rumour in sorted(self._by_node.values(), key=lambda r: (r.transmits, -r.order)):
            cost = per_part_overhead_bytes + len(rumour.data)
            if spent + cost > bytes_available:
                continue
            spent += cost
            out.append(rumour.data)
            rumour.transmits += 1
            if rumour.transmits >= limit:
                del self._by_node[rumour.node]
                self.finished.append(rumour.node)
            if len(out) >= 255 - 1 or bytes_available - spent <= per_part_overhead_bytes:
                break
        return out
