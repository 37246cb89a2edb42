"""Cognitive effects that shape recall: one concern per module.

- ``priming``: semantic (Neely 1977), associative and repetition priming raise the
  confidence of memories related to what was just recalled.
- ``fan``: the more associations a memory has, the less activation each one passes
  on, and the longer its estimated retrieval time (Anderson 1974).
- ``interference``: proactive (Underwood 1957) and retroactive (McGeoch 1942)
  interference lower the confidence of memories with similar neighbours in time.
- ``reconsolidation``: a recalled memory is modifiable inside a window (Nader 2000).
- ``spacing``: successful recalls raise a memory's stability, more when spaced (Cepeda 2006).

Every function here is pure given the times passed in (integer nanoseconds from the
space's injected clock); none reads the wall clock. The space decides which effects
run from ``SpaceConfig.effects``; each can be switched off per space.
"""

from __future__ import annotations

EFFECTS = ("priming", "fan", "interference", "reconsolidation", "spacing")

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3_600 * NS_PER_S
NS_PER_DAY = 24 * NS_PER_HOUR

__all__ = ["EFFECTS", "NS_PER_MS", "NS_PER_S", "NS_PER_HOUR", "NS_PER_DAY"]
