"""Engram's additions to memberlist's failure detector, one behaviour each, on the sans-IO core.

How: a Membership with test_min timings driven by hand-made packets and ticks, as in
test_swim_core.py. Checked here:
- a refused TCP fallback ping ends the probe round at once with a suspicion (and no
  awareness charge), while a timed-out one waits for the end of the round as memberlist does;
- a nack that arrives after its round ended gives back the awareness point it cost;
- an accused member that already refuted answers a stale accusation with its alive,
  directly to the sender; a suspicion learned by rumour is sent once to the accused;
- a suspicion at a newer incarnation restarts the suspicion timer;
- fresh news is pushed at once (not only on the gossip tick), and each flag turns its
  behaviour off (memberlist's algorithm exactly).
"""

from __future__ import annotations

import random

from engram.net.swim import codec
from engram.net.swim import messages as m
from engram.net.swim.config import SwimConfig
from engram.net.swim.core import Datagram, Membership, StreamRequest

VSN = bytes([1, 5, 2, 2, 5, 4])


def _node(**overrides: object) -> Membership:
    config = SwimConfig.test_min(node_name="me", advertise_host="10.0.0.1", **overrides)
    return Membership(config, random.Random(3), 0)


def _alive(name: str, incarnation: int, host: int) -> bytes:
    return codec.encode_message(m.Alive(incarnation, name, bytes([10, 0, 0, host]), 7946, b"", VSN))


def _with_peers(node: Membership, count: int) -> None:
    for i in range(count):
        node.receive((f"10.0.0.{i + 2}", 7946), _alive(f"p{i}", 1, i + 2), 0)
    node.poll_output()
    node.poll_events()


def _decoded(outputs: list[Datagram | StreamRequest]) -> list[tuple[tuple[str, int], object]]:
    return [(o.target, x) for o in outputs if isinstance(o, Datagram) for x in codec.decode_packet(o.data)]


def _tick_until_tcp_ping(node: Membership) -> tuple[int, StreamRequest]:
    now = 0
    while now < 5000:
        now = node.next_deadline_ms()
        node.tick(now)
        for output in node.poll_output():
            if isinstance(output, StreamRequest) and codec.decode_stream(output.data)[0].__class__ is m.Ping:
                return now, output
    raise AssertionError("no TCP fallback ping")


def test_refused_tcp_ping_suspects_at_once() -> None:
    node = _node()
    _with_peers(node, 4)
    now, request = _tick_until_tcp_ping(node)
    awareness = node.awareness.score
    node.stream_reply(request.token, None, now + 1, refused=True)
    suspects = [e for e in node.poll_events() if e.state == "suspect"]
    assert len(suspects) == 1 and "refused" in suspects[0].reason
    assert node.awareness.score == awareness  # the round ended early: no nack charge
    assert node.metrics.tcp_pings_refused == 1


def test_refused_is_ignored_when_turned_off() -> None:
    node = _node(suspect_on_refused=False)
    _with_peers(node, 4)
    now, request = _tick_until_tcp_ping(node)
    node.stream_reply(request.token, None, now + 1, refused=True)
    assert [e for e in node.poll_events() if e.state == "suspect"] == []


def test_late_nack_refunds_awareness() -> None:
    node = _node()
    _with_peers(node, 4)
    now = 0
    relays: list[tuple[str, int]] = []
    seq_no = -1
    while not relays:
        now = node.next_deadline_ms()
        node.tick(now)
        for target, message in _decoded(node.poll_output()):
            if isinstance(message, m.IndirectPing):
                relays.append(target)
                seq_no = message.seq_no
    # Let the round end with no nacks: awareness is charged one point per relay.
    while node.metrics.probes_failed == 0:
        now = node.next_deadline_ms()
        node.tick(now)
    charged = node.awareness.score
    assert charged >= 1
    node.receive(relays[0], codec.encode_message(m.Nack(seq_no)), now + 2)
    assert node.awareness.score == charged - 1
    node.receive(relays[0], codec.encode_message(m.Nack(seq_no)), now + 3)  # a duplicate: nothing more
    assert node.awareness.score == charged - 1


def test_stale_accusation_is_answered_directly() -> None:
    node = _node()
    _with_peers(node, 2)
    node.receive(("10.0.0.2", 7946), codec.encode_message(m.Suspect(1, "me", "p0")), 1)  # we refute: 2
    node.poll_output()
    assert node.incarnation == 2
    node.receive(("10.0.0.3", 7946), codec.encode_message(m.Suspect(1, "me", "p0")), 2)  # stale, from p1
    sent = _decoded(node.poll_output())
    assert (("10.0.0.3", 7946), m.Alive(2, "me", bytes([10, 0, 0, 1]), 7946, b"", node.member("me").vsn)) in [
        (t, x) for t, x in sent if isinstance(x, m.Alive)]  # type: ignore[union-attr]
    assert node.metrics.stale_accusations_answered == 1


def test_rumoured_suspicion_is_told_to_the_accused() -> None:
    node = _node(eager_gossip=False)
    _with_peers(node, 3)
    node.receive(("10.0.0.2", 7946), codec.encode_message(m.Suspect(1, "p2", "p0")), 1)
    sent = _decoded(node.poll_output())
    assert (("10.0.0.4", 7946), m.Suspect(1, "p2", "p0")) in sent
    quiet = _node(eager_gossip=False, tell_the_accused=False)
    _with_peers(quiet, 3)
    quiet.receive(("10.0.0.2", 7946), codec.encode_message(m.Suspect(1, "p2", "p0")), 1)
    assert quiet.poll_output() == []


def test_newer_accusation_restarts_the_timer() -> None:
    node = _node(eager_gossip=False, tell_the_accused=False)
    _with_peers(node, 5)
    node.receive(("10.0.0.2", 7946), codec.encode_message(m.Suspect(1, "p4", "p0")), 100)
    first = node._suspicions["p4"].started_ms
    node.receive(("10.0.0.3", 7946), codec.encode_message(m.Suspect(2, "p4", "p1")), 300)
    suspicion = node._suspicions["p4"]
    assert first == 100 and suspicion.started_ms == 300 and suspicion.confirmations == 0
    assert node.member("p4").incarnation == 2  # type: ignore[union-attr]


def test_fresh_news_is_pushed_at_once() -> None:
    node = _node(tell_the_accused=False)
    _with_peers(node, 5)
    node.receive(("10.0.0.2", 7946), codec.encode_message(m.Dead(1, "p4", "p0")), 1)
    pushed = [t for t, x in _decoded(node.poll_output()) if x == m.Dead(1, "p4", "p0")]
    assert len(pushed) == node.config.gossip_nodes
    lazy = _node(tell_the_accused=False, eager_gossip=False)
    _with_peers(lazy, 5)
    lazy.receive(("10.0.0.2", 7946), codec.encode_message(m.Dead(1, "p4", "p0")), 1)
    assert lazy.poll_output() == []
