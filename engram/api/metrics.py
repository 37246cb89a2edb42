"""Prometheus metrics of one server, in a registry of its own (several apps in one
process, as in tests, do not collide). Gauges about spaces are read at scrape time."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["Metrics"]

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class _SpaceCollector:
    def __init__(self, stats: Callable[[], Iterable[tuple[str, dict[str, Any]]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        memories = GaugeMetricFamily("engram_space_memories", "Memories stored in a space", labels=["space"])
        wal = GaugeMetricFamily("engram_space_wal_bytes", "Bytes in a space's write-ahead log since its checkpoint", labels=["space"])
        evicted = GaugeMetricFamily("engram_space_evicted", "Memories evicted at capacity", labels=["space"])
        for space_id, st in self._stats():
            memories.add_metric([space_id], float(st.get("memories", 0) or 0))
            wal.add_metric([space_id], float(st.get("wal_bytes", 0) or 0))
            evicted.add_metric([space_id], float(st.get("evicted", 0) or 0))
        yield memories
        yield wal
        yield evicted


class Metrics:
    def __init__(self, space_stats: Callable[[], Iterable[tuple[str, dict[str, Any]]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("engram_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("engram_http_request_duration_seconds", "Time to answer an HTTP request", ["route"],
                                 buckets=_LATENCY_BUCKETS_S, registry=r)
        self.remembered = Counter("engram_memories_remembered", "Memories stored over HTTP (bulk included; near-duplicates kept out by dedup not counted)", ["space"], registry=r)
        self.recalls = Counter("engram_recalls", "Recall queries answered", ["space"], registry=r)
        self.recall_batch = Histogram("engram_recall_batch_size", "Recalls answered by one shared scan",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.remember_batch = Histogram("engram_remember_batch_size", "Remembers stored by one WAL batch",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.sse_clients = Gauge("engram_sse_subscribers", "Open server-sent-event streams", registry=r)
        self.auth_failures = Counter("engram_auth_failures", "Requests refused by API key checks", ["reason"], registry=r)
        self.gc_pause = Histogram("engram_gc_pause_seconds", "Pauses of CPython's cyclic garbage collector, by generation",
                                  ["generation"], buckets=_LATENCY_BUCKETS_S, registry=r)
        r.register(_SpaceCollector(space_stats))
        # Children are created lazily; cache them, label lookups cost more than increments.
        self._req_children: dict[tuple[str, str, int], Any] = {}
        self._lat_children: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._req_children.get(key)
        if child is None:
            child = self._req_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        lat = self._lat_children.get(route)
        if lat is None:
            lat = self._lat_children[route] = self.latency.labels(route)
        lat.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
