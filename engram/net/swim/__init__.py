"""SWIM membership with Lifeguard, speaking HashiCorp memberlist's wire protocol.

Modules, one concern each (as memberlist splits them): ``messages`` (the message values),
``codec`` (bytes <-> messages), ``lzw``, ``keyring`` (AES-GCM), ``tags`` (Serf metadata),
``config``, ``awareness``, ``suspicion``, ``broadcast`` (the retransmit-limited queue),
``state`` (members and the merge rules) and ``core`` (the sans-IO node: ``receive``,
``tick``, ``poll_output``, ``next_deadline_ms``). No I/O, clock or trio in any of them.
"""
