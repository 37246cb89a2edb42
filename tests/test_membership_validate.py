"""Cluster settings are checked before use, and partition state follows the reachable fraction.

How: ``validate_membership`` on good and bad settings (advertised 0.0.0.0, bad ports,
unresolvable or self seeds, Consul, bad keys) must return clear problems only for the bad
ones; the partition detector is stepped through connected -> partitioned -> healing ->
connected with its documented confidence penalties.
"""

from __future__ import annotations

from engram.net._trio.node import MembershipConfig
from engram.net._trio.validate import validate_membership
from engram.net.swim.partition import PartitionDetector, PartitionState


def test_good_settings_pass() -> None:
    config = MembershipConfig(node_name="n1", bind="127.0.0.2:7946", seeds=("127.0.0.1:7946",),
                              encrypt="pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")
    assert validate_membership(config) == []


def test_bad_settings_are_explained() -> None:
    problems = validate_membership(MembershipConfig(node_name="n1", bind="0.0.0.0:7946"))
    assert any("advertise" in p for p in problems)
    problems = validate_membership(MembershipConfig(node_name="n1", bind="127.0.0.2:99999"))
    assert any("port" in p for p in problems)
    problems = validate_membership(MembershipConfig(
        node_name="n1", bind="127.0.0.2:7946",
        seeds=("no-such-host.invalid:7946", "127.0.0.2:7946", "consul://x", "0.0.0.0:7946"), encrypt="abc"))
    text = "\n".join(problems)
    for fragment in ("does not resolve", "itself", "Consul", "unspecified", "encrypt"):
        assert fragment in text, (fragment, text)


def test_partition_detector_states_and_penalties() -> None:
    detector = PartitionDetector(threshold=0.5, healing_window_ms=10_000)
    assert detector.update(9, 9, 0) == PartitionState.CONNECTED
    assert detector.penalty().factor == 1.0
    assert detector.update(2, 9, 2000) == PartitionState.PARTITIONED  # 3/10 reachable
    penalty = detector.penalty()
    assert abs(penalty.factor - (1 - 0.5 * (1 - 0.3 / 0.5))) < 1e-9 and "partitioned" in penalty.reason
    assert detector.update(0, 99, 4000) == PartitionState.PARTITIONED
    assert detector.penalty().factor >= 0.5
    assert detector.update(9, 9, 6000) == PartitionState.HEALING
    assert detector.penalty().factor == 0.9
    assert detector.update(9, 9, 12_000) == PartitionState.HEALING
    assert detector.update(9, 9, 16_000) == PartitionState.CONNECTED
