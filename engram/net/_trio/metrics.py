"""Prometheus metrics of cluster membership, read from a MembershipHandle at scrape time.

``register_membership_metrics(registry, handle)`` adds one collector to a
``prometheus_client`` registry. Nothing is updated in the background: every scrape reads
the core's monotonic counters and the member list, so values are never stale and the
membership runtime does no extra work between scrapes. ``handle`` may also be a callable
returning the handle or None (membership not started yet, or stopped): then only
``engram_cluster_up 0`` is exported.

Label cardinality is bounded: states, directions, partition states and suspicion kinds are
closed sets; the per-pair suspicion counter (who suspected whom, and why) keeps at most
``SwimConfig.suspicion_log_count_max`` (256) distinct (suspect, suspected_by, reason)
series, counting later new ones under ``suspect="_other", suspected_by="_other"`` (one
more series per reason).

Metric names (all prefixed ``engram_``):
  cluster_up, cluster_members{state}, cluster_partition_state{state},
  cluster_reachable_fraction, cluster_confidence_penalty,
  swim_awareness_score, swim_incarnation,
  swim_probes_total, swim_probes_failed_total, swim_probes_aligned_total, swim_indirect_probes_total,
  swim_tcp_pings_total, swim_tcp_ping_successes_total, swim_nacks_received_total,
  swim_suspicions_total{reason}, swim_suspicions_by_pair_total{suspect,suspected_by,reason},
  swim_refutes_total, swim_deaths_declared_total, swim_deaths_deferred_after_stall_total,
  swim_bytes_total{direction}, swim_packets_total{direction},
  swim_decode_errors_total, swim_push_pulls_total, swim_push_pull_failures_total,
  swim_dropped_datagrams_total, swim_send_errors_total, swim_address_conflicts_total.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Union

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engram.net._trio.node import MembershipHandle
from engram.net.swim.core import SUSPICION_KINDS
from engram.net.swim.partition import PartitionState

__all__ = ["MembershipCollector", "register_membership_metrics"]

HandleSource = Union[MembershipHandle, Callable[[], "MembershipHandle | None"]]

_STATES = ("alive", "suspect", "dead", "left")

# (metric suffix, Metrics field, help)
_COUNTERS = (
    ("probes", "probes", "Direct probes started"),
    ("probes_failed", "probes_failed", "Probe rounds that ended with no ack (direct, indirect or TCP)"),
    ("probes_aligned", "probes_aligned", "Probes sent to the clock-aligned target (aligned probing)"),
    ("indirect_probes", "indirect_probes", "Indirect ping requests sent to peers"),
    ("tcp_pings", "tcp_pings", "TCP fallback pings attempted"),
    ("tcp_ping_successes", "tcp_ping_successes", "TCP fallback pings answered"),
    ("nacks_received", "nacks_received", "Nacks received from indirect probers"),
    ("refutes", "refutes", "Times this node refuted a suspicion or death about itself"),
    ("deaths_declared", "deaths_declared", "Suspicions about others that timed out into deaths here"),
    ("deaths_deferred_after_stall", "deaths_deferred_after_stall",
     "Suspicions that ran out while this node was stalled and got a grace period to read refutations"),
    ("decode_errors", "decode_errors", "Datagrams or stream messages dropped as undecodable"),
    ("push_pulls", "push_pulls", "Completed TCP push/pull state exchanges"),
    ("push_pull_failures", "push_pull_failures", "Push/pull exchanges that failed or timed out"),
    ("address_conflicts", "address_conflicts", "Alive rumours claiming a live member's name from another address"),
)


class MembershipCollector:
    """A prometheus_client collector over one membership handle."""

    def __init__(self, handle: HandleSource) -> None:
        self._source = handle

    def _handle(self) -> MembershipHandle | None:
        if isinstance(self._source, MembershipHandle):
            return self._source
        return self._source()

    def collect(self) -> Iterator[Metric]:
        handle = self._handle()
        up = GaugeMetricFamily("engram_cluster_up", "1 while cluster membership is running")
        up.add_metric([], 0.0 if handle is None else 1.0)
        yield up
        if handle is None:
            return
        core = handle.core
        counters = core.metrics

        members = GaugeMetricFamily("engram_cluster_members", "Members in this node's view, by state (self included)",
                                    labels=["state"])
        counts = dict.fromkeys(_STATES, 0)
        for member in core.members():
            counts[_STATES[int(member.state)]] += 1
        for state in _STATES:
            members.add_metric([state], float(counts[state]))
        yield members

        partition = GaugeMetricFamily("engram_cluster_partition_state", "1 for the current partition state",
                                      labels=["state"])
        for partition_state in PartitionState:
            partition.add_metric([partition_state.value], 1.0 if handle.partition.state == partition_state else 0.0)
        yield partition
        yield GaugeMetricFamily("engram_cluster_reachable_fraction",
                                "(reachable others + 1) / (tracked others + 1) at the last partition check",
                                value=handle.partition.reachable_fraction)
        yield GaugeMetricFamily("engram_cluster_confidence_penalty",
                                "Multiplier applied to results that depend on other nodes",
                                value=handle.penalty().factor)
        yield GaugeMetricFamily("engram_swim_awareness_score",
                                "Lifeguard local health: 0 healthy; probe interval is multiplied by score+1",
                                value=float(core.awareness.score))
        yield GaugeMetricFamily("engram_swim_incarnation", "This node's incarnation number",
                                value=float(core.incarnation))

        for suffix, field, text in _COUNTERS:
            yield CounterMetricFamily(f"engram_swim_{suffix}", text, value=float(getattr(counters, field)))
        yield CounterMetricFamily("engram_swim_dropped_datagrams", "Outgoing datagrams dropped: send queue full",
                                  value=float(handle.dropped_datagrams))
        yield CounterMetricFamily("engram_swim_send_errors", "Outgoing datagrams the OS refused",
                                  value=float(handle.send_errors))

        by_kind = dict.fromkeys(SUSPICION_KINDS, 0)
        pairs = CounterMetricFamily("engram_swim_suspicions_by_pair",
                                    "Suspicions seen here: who was suspected, by whom, and why (bounded pairs)",
                                    labels=["suspect", "suspected_by", "reason"])
        for (suspect, by, kind), count in sorted(core.suspicion_counts.items()):
            by_kind[kind] += count
            pairs.add_metric([suspect, by, kind], float(count))
        totals = CounterMetricFamily("engram_swim_suspicions", "Suspicions seen here, by why they started",
                                     labels=["reason"])
        for kind in SUSPICION_KINDS:
            totals.add_metric([kind], float(by_kind[kind]))
        yield totals
        yield pairs

        traffic = CounterMetricFamily("engram_swim_bytes", "Gossip bytes (UDP and TCP)", labels=["direction"])
        traffic.add_metric(["in"], float(counters.bytes_in))
        traffic.add_metric(["out"], float(counters.bytes_out))
        yield traffic
        packets = CounterMetricFamily("engram_swim_packets", "Gossip UDP packets", labels=["direction"])
        packets.add_metric(["in"], float(counters.packets_in))
        packets.add_metric(["out"], float(counters.packets_out))
        yield packets


def register_membership_metrics(registry: CollectorRegistry, handle: HandleSource) -> MembershipCollector:
    """Register membership metrics in ``registry``; returns the collector (pass it to
    ``registry.unregister`` to remove it). ``handle`` is a MembershipHandle or a callable
    returning one or None. Raises ValueError (from prometheus_client) if registered twice
    in the same registry."""
    collector = MembershipCollector(handle)
    registry.register(collector)  # type: ignore[arg-type]
    return collector
