"""Consolidation inside the server: a scheduler, on-demand runs, and the beliefs document.

The scheduler wakes every ``interval_s`` (settings ``consolidation_interval``,
default 300 s) and consolidates each space that gained episodes since its last run.
A run happens in a worker thread on a snapshot (``Space.consolidate`` copies the
episodes under the space lock, clusters without it, then writes the patterns), so
remember and recall go on meanwhile. Runs are serialised by their own limiter of
one thread, so they never take the request threads. A run can be cancelled: its
thread stops before writing (``should_stop``). ``POST /api/v1/consolidate`` runs
one now and waits for it.

``GET /api/v1/consolidations`` reflects the latest stored patterns (the original
computed its document once and never refreshed it): each pattern is a belief with
citations to its episodes. Progress goes to the consolidation SSE stream
(``started``, ``finished``, ``failed``) and to Prometheus (runs, failures,
duration, pattern count, freshness).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import Any, Callable

import trio
from prometheus_client import Counter, Gauge, Histogram

from engram.memory.space import ConsolidationCancelled
from engram.memory.types import ns_to_datetime

__all__ = ["ConsolidationScheduler", "CONSOLIDATION_TOPIC"]

log = logging.getLogger("engram.consolidation")

# The event hub topic the consolidation SSE stream subscribes to.
CONSOLIDATION_TOPIC = "\x00consolidation"
CONTENT_PREVIEW_CHARS = 120


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat().replace("+00:00", "Z")


class ConsolidationScheduler:
    """Runs consolidation per space, on a cadence and on demand.

    ``open_space(space_id)`` returns the engine Space (blocking is fine: it is called
    in a worker thread); ``space_ids()`` lists spaces; ``publish(kind, space, data)``
    sends an SSE event.
    """

    def __init__(
        self,
        *,
        open_space: Callable[[str], Any],
        space_ids: Callable[[], list[str]],
        publish: Callable[[str, str, dict[str, Any]], None],
        registry: Any,
        interval_s: float = 300.0,
        max_episodes: int = 5000,
    ) -> None:
        assert interval_s > 0
        assert max_episodes >= 1
        self._open_space = open_space
        self._space_ids = space_ids
        # Every event goes to the consolidation stream's topic; the payload names the space.
        self._publish = lambda kind, space_id, data: publish(kind, CONSOLIDATION_TOPIC, data)
        self.interval_s = interval_s
        self.max_episodes = max_episodes
        self._limiter = trio.CapacityLimiter(1)
        self._cancelled = False
        self._last_episode_lsn: dict[str, int] = {}
        self.last_run: dict[str, dict[str, Any]] = {}
        self.runs_total = 0
        self.failures_total = 0
        self.runs = Counter("engram_consolidation_runs", "Consolidation runs finished", ["space"], registry=registry)
        self.failures = Counter("engram_consolidation_failures", "Consolidation runs that failed", ["space"], registry=registry)
        self.duration = Histogram("engram_consolidation_duration_seconds", "Time of one consolidation run", ["space"],
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=registry)
        self.patterns = Gauge("engram_consolidation_patterns", "Patterns stored by the latest run", ["space"], registry=registry)
        self.freshness = Gauge("engram_consolidation_last_run_timestamp_seconds",
                               "Unix time of the latest finished run (freshness = now - this)", ["space"], registry=registry)

    # ------------------------------------------------------------------ running

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """Held by every run's worker thread; a holder (a backup copying the data
        directory) keeps runs from writing patterns or starting a checkpoint meanwhile."""
        return self._limiter

    def cancel(self) -> None:
        """Stop runs in flight before they write; used on shutdown."""
        self._cancelled = True

    async def run_now(self, space_id: str) -> dict[str, Any]:
        """Consolidate ``space_id`` now and return the run's summary."""
        return await self._run(space_id, reason="request")

    async def _run(self, space_id: str, reason: str) -> dict[str, Any]:
        self._publish("consolidation_started", space_id, {"memory_space_id": space_id, "reason": reason})
        started = time.perf_counter()
        try:
            space = await trio.to_thread.run_sync(self._open_space, space_id, limiter=self._limiter)
            await trio.to_thread.run_sync(
                lambda: space.consolidate(self.max_episodes, should_stop=lambda: self._cancelled),
                limiter=self._limiter,
            )
        except ConsolidationCancelled:
            self._publish("consolidation_cancelled", space_id, {"memory_space_id": space_id})
            return {"memory_space_id": space_id, "reason": reason, "cancelled": True}
        except Exception as exc:  # a failed run is counted and reported, never fatal to the server
            self.failures_total += 1
            self.failures.labels(space_id).inc()
            log.exception("consolidation of %s failed", space_id)
            self._publish("consolidation_failed", space_id, {"memory_space_id": space_id, "error": str(exc)})
            raise
        elapsed = time.perf_counter() - started
        summary = dict(space.last_consolidation or {})
        summary.update({"memory_space_id": space_id, "reason": reason, "duration_s": round(elapsed, 6),
                        "finished_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")})
        self.last_run[space_id] = summary
        self.runs_total += 1
        self.runs.labels(space_id).inc()
        self.duration.labels(space_id).observe(elapsed)
        self.patterns.labels(space_id).set(summary.get("patterns", 0))
        self.freshness.labels(space_id).set(time.time())
        self._publish("consolidation_finished", space_id, summary)
        return summary

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Consolidate every space with new episodes each ``interval_s``, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            for space_id in sorted(self._space_ids()):
                if self._cancelled:
                    return
                try:
                    space = await trio.to_thread.run_sync(self._open_space, space_id, limiter=self._limiter)
                    # Skip spaces whose log has not moved since their last run: nothing new to cluster.
                    lsn = space.stats()["last_lsn"]
                    if self._last_episode_lsn.get(space_id) == lsn:
                        continue
                    await self._run(space_id, reason="schedule")
                    self._last_episode_lsn[space_id] = space.stats()["last_lsn"]
                except Exception:  # counted in _run; the loop goes on with the next space
                    continue

    # ------------------------------------------------------------------ documents

    def beliefs_document(self, space: Any) -> dict[str, Any]:
        """``GET /api/v1/consolidations`` in the original's shape, from the stored patterns.

        Blocking (reads the space): call it in a worker thread.
        """
        now_ns = time.time_ns()
        beliefs = [self.belief(space, pattern, now_ns) for pattern in space.patterns()]
        last = self.last_run.get(space.id)
        stats = {
            "total_replays": self.runs_total,
            "successful_consolidations": self.runs_total,
            "failed_consolidations": self.failures_total,
            "average_replay_speed": 0.0 if not last else round(last.get("episodes", 0) / max(last["duration_s"], 1e-9), 3),
            "total_patterns_extracted": len(beliefs),
            "avg_ripple_frequency": 0.0,
            "avg_ripple_duration": 0.0,
            "last_replay_timestamp": None if not last else last["finished_at"],
        }
        return {
            "generated_at": _iso(now_ns),
            "memory_space_id": space.id,
            "beliefs": beliefs,
            "stats": stats,
        }

    def belief(self, space: Any, pattern: Any, now_ns: int) -> dict[str, Any]:
        citations = []
        confidences = []
        for source_id in pattern.sources:
            episode = space.get(source_id)
            if episode is None:
                continue  # forgotten since the pattern was made
            confidences.append(episode.confidence)
            citations.append({
                "episode_id": episode.id,
                "observed_at": episode.created_at.isoformat().replace("+00:00", "Z"),
                "encoding_confidence": episode.confidence,
                "content_preview": episode.content[:CONTENT_PREVIEW_CHARS],
            })
        last_seen_ns = int(pattern.metadata.get("last_seen_ns", 0))
        strength = float(pattern.metadata.get("strength", pattern.confidence))
        return {
            "id": pattern.id,
            "content": pattern.content,
            "strength": strength,
            "schema_confidence": pattern.confidence,
            "last_consolidated": pattern.created_at.isoformat().replace("+00:00", "Z"),
            "citations": citations,
            "stats": {
                "episode_count": len(pattern.sources),
                "average_source_confidence": math.fsum(confidences) / len(confidences) if confidences else 0.0,
                "freshness_hours": max(0.0, (now_ns - last_seen_ns) / 3.6e12),
            },
        }
