"""memberlist's messages as frozen, slotted dataclasses.

Field names follow memberlist's Go structs in snake_case; ``codec`` maps them to the exact
Go names on the wire (``SeqNo``, ``Incarnation``, ``Vsn`` ...). Addresses are raw IP bytes
(4 for IPv4, 16 for IPv6), as Go's ``net.IP`` travels. These are values only: no methods
that do I/O, no validation beyond what the codec checks when decoding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MessageType",
    "NodeState",
    "Ping",
    "IndirectPing",
    "Ack",
    "Nack",
    "Suspect",
    "Alive",
    "Dead",
    "PushNodeState",
    "PushPull",
    "User",
    "Err",
    "Message",
    "PROTOCOL_VERSION_MIN",
    "PROTOCOL_VERSION_MAX",
    "META_BYTES_MAX",
]

PROTOCOL_VERSION_MIN = 1
PROTOCOL_VERSION_MAX = 5
# memberlist refuses node metadata longer than this (MetaMaxSize).
META_BYTES_MAX = 512


class MessageType(enum.IntEnum):
    """The first byte of every message; memberlist only ever appends to this list."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeState(enum.IntEnum):
    """A member's state as push/pull carries it; also our local view of a member."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class Ping:
    """A direct probe; ``node`` names the intended target so a restarted process under a
    new name does not answer for the old one. ``source_*`` let the target reply directly."""

    seq_no: int
    node: str
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Ask a peer to ping ``target:port`` (named ``node``) for us; ``nack`` asks it to say so
    when the target does not answer in time (Lifeguard)."""

    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    """Answer to a ping with the same sequence number; Serf puts its coordinate in ``payload``."""

    seq_no: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Nack:
    """An indirect prober could not reach the target in time: the problem may be ours."""

    seq_no: int


@dataclass(frozen=True, slots=True)
class Suspect:
    """Rumour: ``from_node`` suspects ``node`` at ``incarnation``."""

    incarnation: int
    node: str
    from_node: str


@dataclass(frozen=True, slots=True)
class Alive:
    """Rumour: ``node`` is alive at ``incarnation`` with this address, metadata and versions.

    ``vsn`` is six bytes: protocol min, max, current, delegate min, max, current.
    """

    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes
    vsn: bytes


@dataclass(frozen=True, slots=True)
class Dead:
    """Rumour: ``node`` is dead at ``incarnation``; ``from_node == node`` means it left."""

    incarnation: int
    node: str
    from_node: str


@dataclass(frozen=True, slots=True)
class PushNodeState:
    """One member as a TCP push/pull carries it."""

    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: NodeState
    vsn: bytes


@dataclass(frozen=True, slots=True)
class PushPull:
    """Full state exchange over TCP; ``join`` marks the first exchange of a joining node.
    ``user_state`` is the delegate's opaque blob (Serf's Lamport clocks); we pass it through."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes = b""


@dataclass(frozen=True, slots=True)
class User:
    """A delegate message (Serf events, queries, intents): opaque to membership."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Err:
    """A stream peer's error answer."""

    error: str


Message = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | PushPull | User | Err
