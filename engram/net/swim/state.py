"""Members and the precedence of rumours about them.

A member is alive, suspect, dead or left, at an incarnation number only that member may
raise. A rumour about a member is applied when it is newer:

- a higher incarnation always wins (that is how a member refutes);
- at the same incarnation, left/dead > suspect > alive: a suspicion overrides alive, a
  death overrides both, and an alive rumour at an incarnation already seen is ignored;
- nothing but a higher-incarnation alive brings a dead or left member back; a newer
  accusation of a dead member only raises the incarnation it is dead at.

Put together: the key ``(incarnation, rank)`` of our view of a member never decreases,
which is what makes replays and reordering harmless (tests/test_swim_core.py).

``supersedes`` states the rule once; the core applies it with memberlist's side effects
(suspicion timers, refutation, broadcasts).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engram.net.swim.messages import NodeState

__all__ = ["Member", "supersedes", "STATE_RANK", "state_name"]

STATE_RANK = {NodeState.ALIVE: 0, NodeState.SUSPECT: 1, NodeState.DEAD: 2, NodeState.LEFT: 2}
_NAMES = {NodeState.ALIVE: "alive", NodeState.SUSPECT: "suspect", NodeState.DEAD: "dead", NodeState.LEFT: "left"}


def state_name(state: NodeState) -> str:
    return _NAMES[state]


def supersedes(new_state: NodeState, new_incarnation: int, old_state: NodeState, old_incarnation: int) -> bool:
    """Whether a rumour (new_state, new_incarnation) replaces what we hold."""
    return (new_incarnation, STATE_RANK[new_state]) > (old_incarnation, STATE_RANK[old_state])


@dataclass(slots=True)
class Member:
    """Our view of one member. Mutable: the core updates it in place."""

    name: str
    addr: bytes
    port: int
    meta: bytes
    vsn: bytes
    incarnation: int
    state: NodeState
    state_change_ms: int
    host: str = field(default="")

    def __post_init__(self) -> None:
        self.host = _host_of(self.addr)

    def set_address(self, addr: bytes, port: int) -> None:
        self.addr = addr
        self.port = port
        self.host = _host_of(addr)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def protocol_max(self) -> int:
        return self.vsn[1] if len(self.vsn) >= 2 else 1


def _host_of(addr: bytes) -> str:
    if len(addr) in (4, 16):
        return str(ipaddress.ip_address(addr))
    return ""
