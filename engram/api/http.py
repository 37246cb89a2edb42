"""The ASGI app: Engram's HTTP routes over a ``Service``.

Routes and JSON shapes follow the original Engram (see the OpenAPI document at
/api-docs/openapi.json). Each handler is wrapped by ``_endpoint``, which checks the API
key (401/403/429), times the request for /metrics, and turns every exception into the
error envelope: an ApiError or engine ValidationError is the client's 4xx, anything
else a 500 whose details go to the log only. Handlers never block the loop: engine
calls go through ``Service.run`` or the per-space recall batcher.

Space selection on every request: the X-Memory-Space header, then ?space=, then the
body's memory_space_id (or memory_space), then "default".
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgpack
import numpy as np
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from . import schemas as S
from .auth import KeyRecord
from .errors import ApiError, error_bytes, from_engine_error
from .events import SSEResponse
from .service import ADMITTED_BEFORE_SHUTDOWN, Service

__all__ = ["create_app", "VERSION"]

log = logging.getLogger("engram.api")

try:
    from .. import __version__ as VERSION
except ImportError:  # the package's __init__ is being rewritten
    VERSION = "0.1.0"

JSON = "application/json"
# Bodies at least this large (bulk loads) are read into one NumPy buffer (Ctx._large_body).
LARGE_BODY_BYTES_MIN = 1 << 20
Handler = Callable[[Request, "Ctx"], Awaitable[Response]]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(S.dumps(obj), status_code=status, media_type=JSON, headers=headers)


def error_response(err: ApiError) -> Response:
    return Response(error_bytes(err), status_code=err.status, media_type=JSON, headers=err.headers or None)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Ctx:
    """What a handler knows about its caller."""

    __slots__ = ("svc", "key", "request", "_params")

    def __init__(self, svc: Service, key: KeyRecord | None, request: Request) -> None:
        self.svc = svc
        self.key = key
        self.request = request
        self._params: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = S.query_dict(self.request.scope.get("query_string", b""))
        return self._params

    def named_space(self) -> tuple[str, str] | None:
        """The space the header or the query string names, with the field to blame, or None."""
        raw = self.request.headers.get("x-memory-space")
        if raw:
            return raw.strip(), "X-Memory-Space"
        for key in ("space", "memory_space_id"):
            q = self.params.get(key)
            if q:
                return q, key
        return None

    def visible_spaces(self) -> list[str]:
        """The spaces the server knows that this request's key may use (all without keys)."""
        return [s for s in self.svc.known_spaces() if self.key is None or self.key.allows_space(s)]

    def space_id(self, body: Any = None) -> str:
        body_space = None
        if isinstance(body, dict):
            # A space named anywhere must be valid, even where a header overrides it.
            for key in ("memory_space_id", "memory_space"):
                if body.get(key) is not None:
                    body_space = (S.check_space_id(body[key], key), key)
                    break
        named = self.named_space()
        if named is not None:
            space, source = S.check_space_id(*named), named[1]
        elif body_space is not None:
            space, source = body_space
        else:
            space, source = "default", "X-Memory-Space"  # none named: the header is how to name one
        if self.key is not None and not self.key.allows_space(space):
            example = f"X-Memory-Space: {self.key.spaces[0]}" if source == "X-Memory-Space" else f"{source}={self.key.spaces[0]}"
            raise ApiError(403, f"this API key may not use memory space {space!r}", field=source,
                           allowed=", ".join(self.key.spaces), example=example)
        return space

    async def body(self, limit: int | None = None, *, large_ok: bool = False) -> bytes | memoryview:
        """The request body, at most ``limit`` bytes (else 413). With ``large_ok``, a body
        of LARGE_BODY_BYTES_MIN or more comes as a memoryview (msgpack, orjson and NumPy
        read it; ``bytes()`` of it is a copy)."""
        limit = limit or self.svc.settings.body_bytes_max
        # Past the limit, read and drop up to this many bytes before answering 413, so
        # that a client still sending its body reads our answer instead of a reset.
        drain_bytes_max = max(4 * limit, 16 * 1024 * 1024)
        too_large = ApiError(413, f"the body is larger than {limit} bytes", field="body", allowed=f"at most {limit} bytes",
                             example="send large loads to POST /api/v1/memories/bulk in chunks of a few MB")
        cl = self.request.headers.get("content-length")
        if cl is not None:
            cl = cl.strip()
            # ASCII digits only: str.isdigit() also passes '²' or '١', which int() then
            # refuses ('²') or reads as a number no client meant ('١').
            if not (cl.isascii() and cl.isdigit()):
                raise ApiError(400, f"Content-Length {cl[:40]!r} is not a number", field="Content-Length",
                               allowed="a byte count in ASCII digits", example="Content-Length: 120")
            if int(cl) > drain_bytes_max:
                raise too_large
        expected = int(cl) if cl is not None and large_ok else 0
        # A deadline for the whole body: without one, a client that sends its headers and
        # then holds the body back (or trickles it) keeps the connection, and with enough
        # of them the server's file descriptors, for as long as it likes.
        announced = min(int(cl), drain_bytes_max) if cl is not None else limit
        timeout_s = self.svc.settings.body_timeout_s + announced / (1024 * 1024)
        try:
            with trio.fail_after(timeout_s):
                if expected >= LARGE_BODY_BYTES_MIN and expected <= limit:
                    return await self._large_body(expected, limit, too_large, drain_bytes_max)
                return await self._small_body(limit, too_large, drain_bytes_max)
        except trio.TooSlowError:
            raise ApiError(408, f"the body did not arrive within {timeout_s:.0f} s", field="body",
                           allowed=f"a body sent within {self.svc.settings.body_timeout_s:g} s plus 1 s per MiB",
                           example="send the whole body right after the headers (Content-Length: the exact byte count)",
                           headers={"Connection": "close"}) from None
        except ClientDisconnect:
            # The client is gone: nobody reads the answer, and it is no server error.
            raise ApiError(400, "the client closed the connection before its body arrived", field="body",
                           allowed="a complete body", example="Content-Length: the exact byte count sent") from None

    async def _small_body(self, limit: int, too_large: ApiError, drain_bytes_max: int) -> bytes:
        chunks = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                chunks.clear()
                if size > drain_bytes_max:
                    raise too_large
                continue
            chunks.append(chunk)
        if size > limit:
            raise too_large
        return b"".join(chunks)

    async def _large_body(self, expected: int, limit: int, too_large: ApiError, drain_bytes_max: int) -> memoryview:
        """The body copied once into a NumPy buffer of its announced length. NumPy backs
        large allocations with huge pages; a b"".join of 15 MB cost ~12 ms here, mostly
        page faults on a fresh mapping, the NumPy buffer ~2."""
        view = np.empty(expected, np.uint8).data
        size = 0
        async for chunk in self.request.stream():
            end = size + len(chunk)
            if end <= expected:
                view[size:end] = chunk
            elif end > drain_bytes_max:
                raise too_large
            size = end
        if size > limit:
            raise too_large
        if size != expected:  # h11 should not let this happen; answer it as the client's mistake anyway
            raise ApiError(400, f"the body has {size} bytes where Content-Length announced {expected}", field="Content-Length",
                           allowed="the exact length of the body", example=f"Content-Length: {size}")
        return view

    async def json_body(self) -> Any:
        return S.parse_json(await self.body())  # type: ignore[arg-type]


def create_app(svc: Service) -> Starlette:
    """The Starlette app serving ``svc``."""

    def endpoint(route: str, permission: str | None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def handler(request: Request) -> Response:
                t0 = time.perf_counter()
                status = 500
                ADMITTED_BEFORE_SHUTDOWN.set(not svc.shutting_down)
                try:
                    key = None
                    if permission is not None:
                        key = await svc.authenticate(request.headers.get("authorization"))
                        if key is not None and not key.allows(permission):
                            raise ApiError(403, f"this API key lacks the '{permission}' permission",
                                           field="Authorization", allowed=f"a key with {permission}",
                                           example=f"engram key create --space default --perm {permission}")
                    response = await fn(request, Ctx(svc, key, request))
                    status = response.status_code
                    return response
                except ApiError as err:
                    status = err.status
                    return error_response(err)
                except Exception as exc:  # noqa: BLE001 - the envelope, never a traceback, reaches the client
                    err = from_engine_error(exc)
                    if err.status >= 500:
                        log.exception("error answering %s %s", request.method, route)
                    status = err.status
                    return error_response(err)
                finally:
                    svc.metrics.observe(route, request.method, status, time.perf_counter() - t0)

            handler.__name__ = fn.__name__
            return handler

        return wrap

    # ------------------------------------------------------------------ health

    def health_doc() -> tuple[dict[str, Any], int]:
        status = "unhealthy" if svc.shutting_down else "healthy"
        return ({"status": status, "service": "engram", "version": VERSION, "timestamp": now_iso()},
                503 if status == "unhealthy" else 200)

    @endpoint("/health", None)
    async def health(request: Request, ctx: Ctx) -> Response:
        doc, code = health_doc()
        return json_response(doc, code, {"Retry-After": "1"} if code == 503 else None)

    @endpoint("/api/v1/system/health", "read")
    async def system_health(request: Request, ctx: Ctx) -> Response:
        await svc.refresh_known()
        spaces = []
        for space_id in ctx.visible_spaces():
            sp = await svc.space(space_id, create=False)
            st = await svc.run(sp.stats) if sp is not None else {}
            count = int(st.get("memories", 0)) + int(st.get("episodes", 0))
            capacity = getattr(getattr(sp, "config", None), "capacity", None)
            spaces.append({
                "space": space_id,
                "memories": count,
                "pressure": round(count / capacity, 4) if capacity else 0.0,
                "wal_lag_ms": 0.0,
                "consolidation_rate": 0.0,
                "wal_bytes": int(st.get("wal_bytes", 0)),
                "last_lsn": int(st.get("last_lsn", 0)),
                "durability": st.get("durability", "sync"),
            })
        status = "unhealthy" if svc.shutting_down else "healthy"
        checks = [
            {"name": "storage", "status": status, "message": f"data directory {svc.settings.data_dir}"},
            {"name": "engine_threads", "status": "healthy",
             "message": f"{svc.limiter.borrowed_tokens} of {svc.limiter.total_tokens} worker threads busy"},
            {"name": "auth", "status": "healthy", "message": "API keys required" if svc.auth_enabled else "API keys off (loopback)"},
        ]
        doc = {"status": status, "service": "engram", "version": VERSION, "timestamp": now_iso(),
               "uptime_s": round(time.monotonic() - svc.started_monotonic_s, 3), "checks": checks, "spaces": spaces}
        return json_response(doc, 503 if svc.shutting_down else 200)

    @endpoint("/metrics", "read")
    async def metrics(request: Request, ctx: Ctx) -> Response:
        # The samples are labelled with every space's id, and filtering Prometheus text
        # per key would be a second renderer: only a key for all spaces may read them.
        if ctx.key is not None and not ctx.key.all_spaces:
            raise ApiError(403, "/metrics covers every memory space; this API key is limited to some", field="Authorization",
                           allowed="a key for every space with the read permission",
                           example="engram key create --space '*' --perm read")
        svc.metrics.sse_clients.set(svc.hub.subscriber_count)
        body = await svc.run(svc.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------------ writes

    def stored_doc(memory_id: str, space_id: str, confidence: float, observed: datetime | None, kind: str,
                   outcome: str = "stored") -> dict[str, Any]:
        stored = now_iso()
        reasoning = {
            "stored": f"{kind} written to the write-ahead log and fsync'd",
            "merged": f"A near-duplicate of memory {memory_id}, more confident: merged into it (it keeps its id); fsync'd",
            "kept": f"Memory {memory_id}, a near-duplicate at least as confident, is already stored: nothing changed",
        }[outcome]
        return {
            "memory_id": memory_id,
            "storage_confidence": S.confidence_json(confidence, reasoning),
            "consolidation_state": "Recent",
            "observed_at": S.iso(observed) if observed is not None else stored,
            "stored_at": stored,
            "memory_space_id": space_id,
            "auto_links": [],
            "outcome": outcome,
            "system_message": {"stored": f"{kind} stored", "merged": f"{kind} merged into near-duplicate {memory_id}",
                               "kept": f"{kind} not stored: near-duplicate {memory_id} kept"}[outcome],
        }

    @endpoint("/api/v1/memories/remember", "write")
    async def remember(request: Request, ctx: Ctx) -> Response:
        raw = await ctx.body()
        body = S.parse_json(raw)  # type: ignore[arg-type]
        S.require_object(body, "body", S.REMEMBER_EXAMPLE)
        space_id = ctx.space_id(body)
        kw = S.parse_remember(body, dim=await svc.dimension_of(space_id))
        if kw.get("embedding") is None:
            vectors = await svc.embed(space_id, [kw["content"]])
            if vectors is not None:
                kw["embedding"] = vectors[0]
        async with svc.writing(), svc.space_for_write(space_id) as sp:
            result = await svc.write_batcher(space_id, sp).submit(kw)
            confidence, observed = kw["confidence"], kw.get("when")
            if result.outcome == "kept":  # the answer states what is stored, not what was sent
                kept = await svc.run(sp.get, result.id)  # an engine read: off the event loop
                if kept is not None:
                    confidence, observed = kept.confidence, kept.created_at
        memory_id = result.id
        doc = stored_doc(memory_id, space_id, confidence, observed, "Memory", result.outcome)
        if result.outcome != "kept":  # a kept near-duplicate changed nothing: not counted, no event
            svc.metrics.remembered.labels(space_id).inc()
            svc.hub.publish("memory_stored", space_id, {"memory_id": memory_id, "content": kw["content"][:200],
                                                         "confidence": kw["confidence"], "memory_type": kw["memory_type"]})
        return json_response(doc, 201)

    @endpoint("/api/v1/episodes/remember", "write")
    async def remember_episode(request: Request, ctx: Ctx) -> Response:
        body = await ctx.json_body()
        S.require_object(body, "body", S.EPISODE_EXAMPLE)
        space_id = ctx.space_id(body)
        kw = S.parse_episode(body, dim=await svc.dimension_of(space_id))
        if kw.get("embedding") is None:
            vectors = await svc.embed(space_id, [kw["what"]])
            if vectors is not None:
                kw["embedding"] = vectors[0]
        async with svc.writing(), svc.space_for_write(space_id) as sp:
            memory_id = await svc.run(lambda: sp.remember_episode(**kw))
        svc.metrics.remembered.labels(space_id).inc()
        conf = kw.get("confidence", kw.get("importance", 0.7))
        doc = stored_doc(memory_id, space_id, conf, kw["when"], "Episode")
        svc.hub.publish("episode_stored", space_id, {"memory_id": memory_id, "what": kw["what"][:200], "when": S.iso(kw["when"])})
        return json_response(doc, 201)

    @endpoint("/api/v1/memories/bulk", "write")
    async def bulk(request: Request, ctx: Ctx) -> Response:
        space_id = ctx.space_id(None)
        t_read = time.perf_counter()
        raw = await ctx.body(svc.settings.bulk_body_bytes_max, large_ok=True)
        t_parse = time.perf_counter()
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        dim = await svc.dimension_of(space_id)
        # Decoding and checking a bulk body costs ~5 (msgpack) to ~70 (JSON) us of CPU
        # per memory: a worker thread does it, so the event loop serves others meanwhile.
        kws = await svc.run(_parse_bulk, raw, ctype, svc.settings.bulk_items_max, dim, space_id)
        parse_s = time.perf_counter() - t_parse
        if not kws:
            return json_response({"memory_ids": [], "count": 0, "memory_space_id": space_id, "stored_at": now_iso()}, 201)
        missing = [kw for kw in kws if kw.get("embedding") is None]
        for start in range(0, len(missing), 1024):  # the embedder takes at most 1024 texts a call
            vectors = await svc.embed(space_id, [kw["content"] for kw in missing[start : start + 1024]])
            if vectors is None:
                break
            for kw, vector in zip(missing[start : start + 1024], vectors):
                kw["embedding"] = vector
        t0 = time.perf_counter()
        async with svc.writing(), svc.space_for_write(space_id) as sp:
            results = await svc.run(lambda: sp.remember_many(kws, outcomes=True))
        elapsed = time.perf_counter() - t0
        ids = [r.id for r in results]
        # As remember: a kept near-duplicate changed nothing, so it is not counted and the
        # event leaves it out (a bulk of nothing but kept ones publishes none).
        changed = [r.id for r in results if r.outcome != "kept"]
        kept = len(ids) - len(changed)
        merged = sum(r.outcome == "merged" for r in results)
        svc.metrics.remembered.labels(space_id).inc(len(changed))
        if changed:
            svc.hub.publish("memories_bulk_stored", space_id, {"count": len(changed), "memory_ids": changed[:100]})
        # The time split lets `engram bench bulk` report the HTTP cost apart from the engine's.
        return json_response({"memory_ids": ids, "count": len(ids), "merged": merged, "kept": kept,
                              "memory_space_id": space_id, "stored_at": now_iso(),
                              "read_seconds": round(t_parse - t_read, 6), "parse_seconds": round(parse_s, 6),
                              "engine_seconds": round(elapsed, 6)}, 201)

    @endpoint("/api/v1/memories/{memory_id}", "write")
    async def delete_memory(request: Request, ctx: Ctx) -> Response:
        memory_id = request.path_params["memory_id"]
        space_id = ctx.space_id(None)
        sp = await svc.space(space_id, create=False)
        if sp is None or not S.MEMORY_ID_RE.match(memory_id):
            raise _not_found(memory_id, space_id)
        async with svc.writing():
            existed = await svc.run(sp.forget, memory_id)
        if not existed:
            raise _not_found(memory_id, space_id)
        svc.hub.publish("memory_deleted", space_id, {"memory_id": memory_id})
        return json_response({"memory_id": memory_id, "deleted": True, "memory_space_id": space_id, "deleted_at": now_iso()})

    # ------------------------------------------------------------------ reads

    async def run_recall(ctx: Ctx, params: Any, *, threshold_default: float | None = None) -> tuple[str, dict[str, Any], list[Any], Any]:
        space_id = ctx.space_id(params if isinstance(params, dict) else None)
        q = S.parse_recall_params(params, dim=await svc.dimension_of(space_id), threshold_default=threshold_default)
        threshold = q["threshold"]
        if threshold is None:
            # The original's default threshold 0.5 is a cosine; a lexical match has its own scale.
            threshold = 0.5 if q["embedding"] is not None and q["text"] is None else 0.0
        engine_q = {"embedding": q["embedding"], "text": q["text"], "k": q["k"], "threshold": threshold,
                    "after": q["after"], "before": q["before"], "location": q["location"],
                    "memory_types": q["memory_types"], "mode": q["mode"]}
        if q["embedding"] is None and q["text"] is not None:
            vectors = await svc.embed(space_id, [q["text"]])
            if vectors is not None:
                engine_q["embedding"] = vectors[0]  # with the text: scored by the mean of both cues
        sp = await svc.space(space_id, create=False)
        if sp is None:
            return space_id, q, [], None
        hits = await svc.batcher(space_id, sp).recall(engine_q)
        svc.metrics.recalls.labels(space_id).inc()
        q["threshold"] = threshold
        return space_id, q, hits, sp

    def query_analysis(q: dict[str, Any], space_id: str) -> dict[str, Any]:
        cues = [name for name, present in (("semantic", q["text"] is not None), ("embedding", q["embedding"] is not None),
                                           ("temporal", q["after"] is not None or q["before"] is not None),
                                           ("context", q["location"] is not None)) if present]
        understood = f"searching for: {q['text']}" if q["text"] else ("embedding similarity" if q["embedding"] is not None else "filtered listing")
        return {
            "understood_as": understood,
            "search_strategy": {"similarity": "exact cosine and lexical match", "spreading": "match then spreading activation",
                                "hybrid": "match then spreading activation"}[q["mode"]],
            "cue_types": cues,
            "mode": q["mode"],
            "threshold": q["threshold"],
            "max_results": q["k"],
            "filters": {"from_time": S.iso(q["after"]), "to_time": S.iso(q["before"]), "location": q["location"],
                        "memory_types": list(q["memory_types"]) if q["memory_types"] else None},
            "memory_space_id": space_id,
        }

    async def recall_doc(ctx: Ctx, params: Any) -> Response:
        space_id, q, hits, sp = await run_recall(ctx, params)
        vivid, associated = [], []
        # The engine applies the mode (similarity, spreading, hybrid) and the cognitive
        # effects; a hit reached only through spreading is "associated" whatever its
        # confidence, a direct match is "vivid" above confidence 0.7.
        for h in hits:
            path = getattr(h, "retrieval_path", "similarity")
            item = S.hit_json(h, retrieval_path="direct_match" if path in ("similarity", "filter", "similarity+spreading")
                              else "spreading_activation", activation=getattr(h, "activation", None))
            item["effects"] = [{"effect": name, "factor": factor} for name, factor in getattr(h, "effects", ())]
            if getattr(h, "estimated_retrieval_ms", None) is not None:
                item["estimated_retrieval_ms"] = h.estimated_retrieval_ms
            (vivid if h.confidence > 0.7 and path != "spreading" else associated).append(item)
        top = [h.confidence for h in hits[:3]]
        rc = sum(top) / len(top) if top else 0.0
        doc = {
            "memories": {"vivid": vivid, "associated": associated, "reconstructed": []},
            "recall_confidence": S.confidence_json(rc, f"mean confidence of the top {len(top)} direct matches" if top else "nothing matched"),
            "query_analysis": query_analysis(q, space_id),
            "total": len(vivid) + len(associated),
        }
        return json_response(doc)

    @endpoint("/api/v1/memories/recall", "read")
    async def recall_get(request: Request, ctx: Ctx) -> Response:
        return await recall_doc(ctx, ctx.params)

    @endpoint("/api/v1/memories/recall", "read")
    async def recall_post(request: Request, ctx: Ctx) -> Response:
        body = S.require_object(await ctx.json_body(), "body", '{"query": "mitochondria", "max_results": 5}')
        return await recall_doc(ctx, body)

    @endpoint("/api/v1/query/probabilistic", "read")
    async def probabilistic(request: Request, ctx: Ctx) -> Response:
        params = ctx.params
        include_evidence = S.param_bool(params, "include_evidence")
        include_uncertainty = S.param_bool(params, "include_uncertainty")
        space_id, q, hits, sp = await run_recall(ctx, params)
        items = [S.hit_json(h, retrieval_path="direct_match") for h in hits]
        confs = [h.confidence for h in hits]
        n = len(confs)
        point = sum(confs) / n if n else 0.0
        if n > 1:
            var = sum((c - point) ** 2 for c in confs) / (n - 1)
            half = 1.96 * math.sqrt(var / n)
        else:
            half = 0.5 if n == 0 else 0.25
        lower, upper = max(0.0, point - half), min(1.0, point + half)
        doc: dict[str, Any] = {
            "memories": items,
            "confidence_interval": {"lower": lower, "upper": upper, "point": point, "width": upper - lower},
            "query_analysis": query_analysis(q, space_id),
        }
        if include_evidence:
            doc["evidence_chain"] = [{"memory_id": h.id, "source": "direct_match", "match_score": float(h.score),
                                      "retention": float(h.retention), "stored_confidence": float(h.memory.confidence),
                                      "contribution": float(h.confidence)} for h in hits]
        if include_uncertainty:
            mean_ret = sum(h.retention for h in hits) / n if n else 0.0
            mean_score = sum(h.score for h in hits) / n if n else 0.0
            doc["uncertainty_sources"] = [
                {"source": "decay", "impact": round(1.0 - mean_ret, 6), "explanation": "memories fade since their last access"},
                {"source": "match", "impact": round(1.0 - mean_score, 6), "explanation": "how far the cue is from the memories"},
                {"source": "sample_size", "impact": round(1.0 / (1 + n), 6), "explanation": "few matches give a wide interval"},
            ]
        return json_response(doc)

    @endpoint("/api/v1/memories/search", "read")
    async def search(request: Request, ctx: Ctx) -> Response:
        params = request.query_params
        text = params.get("query") or params.get("q")
        if not text or not text.strip():
            raise ApiError(400, "query: is required", field="query", allowed="words to look for", example="/api/v1/memories/search?query=mitochondria")
        # Checked under its own name: an error about 'max_results' would name a
        # parameter the caller of this route never sent.
        limit = S.param_int(params, "limit", lo=1, hi=S.MAX_RESULTS_MAX, default=10) if params.get("limit") else None
        merged = {"query": text, "max_results": str(limit) if limit is not None else params.get("max_results") or "10"}
        if params.get("threshold"):
            merged["threshold"] = params["threshold"]
        _, q, hits, _ = await run_recall(ctx, merged)
        return json_response({"memories": [S.hit_json(h, retrieval_path="lexical_match") for h in hits], "total": len(hits)})

    @endpoint("/cluster/nodes", "read")
    async def cluster_nodes(request: Request, ctx: Ctx) -> Response:
        """Members as SWIM sees them; a server without --cluster lists itself alone."""
        if svc.membership is None:
            nodes = [{"id": "local", "swim_address": None, "api_address": request.url.netloc, "state": "alive",
                      "incarnation": 0, "tags": {"role": "engram"}}]
            return json_response({"mode": "single-node", "nodes": nodes, "count": 1})
        nodes = svc.membership.members()
        return json_response({"mode": "cluster", "nodes": nodes, "count": len(nodes)})

    @endpoint("/cluster/health", "read")
    async def cluster_health(request: Request, ctx: Ctx) -> Response:
        """Membership counts, partition state and the confidence penalty it implies."""
        if svc.membership is None:
            return json_response({"mode": "single-node", "members": {"alive": 1, "suspect": 0, "dead": 0, "left": 0},
                                  "partition": {"state": "connected", "reachable_fraction": 1.0},
                                  "confidence_penalty": {"factor": 1.0, "reason": "single node"}})
        doc = dict(svc.membership.health())
        doc["mode"] = "cluster"
        return json_response(doc)

    @endpoint("/api/v1/query", "read")
    async def query_route(request: Request, ctx: Ctx) -> Response:
        """The query language (engram.memory.query): RECALL, SPREAD FROM, CONSOLIDATE."""
        from engram.memory import query as query_mod

        body = S.require_object(await ctx.json_body(), "body", '{"query": "RECALL \\"mitochondria\\" LIMIT 5"}')
        text = S.get_str(body, "query", required=True, example='"RECALL \\"mitochondria\\" LIMIT 5"')
        assert text is not None
        statement = query_mod.parse(text)  # a QueryError is a ValidationError: 400 with position and suggestion
        space_id = ctx.space_id(body)
        is_write = isinstance(statement, query_mod.ConsolidateQuery)
        if is_write and ctx.key is not None and not ctx.key.allows("write"):
            raise ApiError(403, "this API key lacks the 'write' permission CONSOLIDATE needs", field="Authorization",
                           allowed="a key with write", example="engram key create --space default --perm read,write")
        sp = await svc.space(space_id, create=False)
        if sp is None:
            return json_response({"operation": type(statement).__name__.removesuffix("Query").upper(), "memory_space_id": space_id,
                                  "memories": [], "activations": {}, "patterns": []})
        if is_write:
            async with svc.writing():
                result = await svc.run(query_mod.execute, sp, statement)
        else:
            result = await svc.run(query_mod.execute, sp, statement)
        return json_response({
            "operation": result.operation,
            "memory_space_id": space_id,
            "memories": [S.hit_json(h, retrieval_path=getattr(h, "retrieval_path", "similarity")) for h in result.hits],
            "activations": result.activations,
            "patterns": [S.memory_json(m, include_embedding=False) for m in result.patterns],
        })

    @endpoint("/api/v1/memories", "read")
    async def list_memories(request: Request, ctx: Ctx) -> Response:
        offset, limit, include_embeddings = S.parse_list_params(request.query_params)
        space_id = ctx.space_id(None)
        sp = await svc.space(space_id, create=False)
        if sp is None:
            memories, total = [], 0
        else:
            memories, total = await svc.run(lambda: (sp.list(offset, limit), len(sp)))
        docs = [S.memory_json(m, include_embedding=include_embeddings) for m in memories]
        return json_response({"memories": docs, "count": total, "memory_space_id": space_id,
                              "pagination": {"offset": offset, "limit": limit, "returned": len(docs)}})

    @endpoint("/api/v1/memories/{memory_id}", "read")
    async def get_memory(request: Request, ctx: Ctx) -> Response:
        memory_id = request.path_params["memory_id"]
        space_id = ctx.space_id(None)
        include_embedding = S.param_bool(request.query_params, "include_embeddings") or S.param_bool(request.query_params, "include_embedding")
        sp = await svc.space(space_id, create=False)
        if sp is None or not S.MEMORY_ID_RE.match(memory_id):
            raise _not_found(memory_id, space_id)
        m = await svc.run(sp.get, memory_id)
        if m is None:
            raise _not_found(memory_id, space_id)
        return json_response(S.memory_json(m, include_embedding=include_embedding))

    async def get_or_delete(request: Request) -> Response:
        if request.method == "DELETE":
            return await delete_memory(request)
        return await get_memory(request)

    async def memories_root(request: Request) -> Response:
        if request.method == "POST":
            return await remember(request)
        return await list_memories(request)

    async def recall_route(request: Request) -> Response:
        if request.method == "POST":
            return await recall_post(request)
        return await recall_get(request)

    # ------------------------------------------------------------------ spaces

    async def space_doc(space_id: str) -> dict[str, Any]:
        # A space this server has not opened, closed cleanly, is described from its
        # summary without being opened (Database.space_info): listing a thousand spaces
        # does not replay a thousand logs into memory.
        info = await svc.run(svc.db.space_info, space_id)
        return {"id": space_id, "persistence_root": info["path"], "created_at": S.iso(info["created_at"]),
                "memories": int(info["memories"]), "dimension": int(info["dimension"]), "effects": info["effects"]}

    @endpoint("/api/v1/spaces", "read")
    async def list_spaces(request: Request, ctx: Ctx) -> Response:
        await svc.refresh_known()
        out = [await space_doc(space_id) for space_id in ctx.visible_spaces()]
        return json_response({"spaces": out, "count": len(out)})

    @endpoint("/api/v1/spaces", "write")
    async def create_space(request: Request, ctx: Ctx) -> Response:
        body = S.require_object(await ctx.json_body(), "body", '{"id": "agent-1"}')
        raw = body.get("id", body.get("space_id", body.get("name")))
        if raw is None:
            raise ApiError(422, "id: is required", field="id", allowed="a space id", example='{"id": "agent-1"}')
        space_id = S.check_space_id(raw, "id")
        if ctx.key is not None and not ctx.key.allows_space(space_id):
            raise ApiError(403, f"this API key may not use memory space {space_id!r}", field="id",
                           allowed=", ".join(ctx.key.spaces), example=f'{{"id": "{ctx.key.spaces[0]}"}}')
        for key in _SPACE_SETTINGS:
            if key in body:
                # Other unknown fields are ignored, but a setting next to "id" instead of in
                # "config" would silently make a space without it (a 768-dimension space
                # for {"id": ..., "dimension": 384}), and dimension never changes after.
                raise ApiError(422, f"{key}: a space setting belongs inside config, not next to id", field=key,
                               allowed="the settings " + ", ".join(_SPACE_SETTINGS) + " inside config",
                               example=f'{{"id": "{space_id}", "config": {{"{key}": {json.dumps(body[key])[:40]}}}}}')
        config = _space_config(body.get("config"))
        existed = svc.space_exists(space_id)
        if existed and config:
            raise ApiError(409, f"space {space_id!r} already exists; its config is set at creation", code="SPACE_EXISTS",
                           field="config", allowed="no config for an existing space", example='{"id": "agent-1"}')
        async with svc.writing():
            await svc.space(space_id, create=True, config=config)
        doc = await space_doc(space_id)
        if not existed:
            svc.hub.publish("space_created", space_id, {"id": space_id})
        return json_response(doc, 200 if existed else 201)

    async def spaces_route(request: Request) -> Response:
        if request.method == "POST":
            return await create_space(request)
        return await list_spaces(request)

    # ------------------------------------------------------------------ consolidation (placeholder)

    @endpoint("/api/v1/consolidations", "read")
    async def consolidations(request: Request, ctx: Ctx) -> Response:
        space_id = ctx.space_id(None)
        limit = S.param_int(ctx.params, "max_episodes", lo=1, hi=100_000, default=500) if ctx.params.get("max_episodes") else None
        sp = await svc.space(space_id, create=False)
        if svc.consolidation is not None and sp is not None and hasattr(sp, "patterns"):
            doc = await svc.run(svc.consolidation.beliefs_document, sp)
            if limit is not None:
                doc["beliefs"] = doc["beliefs"][:limit]
            return json_response(doc)
        return json_response({
            "generated_at": now_iso(),
            "memory_space_id": space_id,
            "beliefs": [],
            "stats": {"total_replays": 0, "successful_consolidations": 0, "failed_consolidations": 0,
                      "average_replay_speed": 0.0, "total_patterns_extracted": 0, "avg_ripple_frequency": 0.0,
                      "avg_ripple_duration": 0.0, "last_replay_timestamp": None},
        })

    @endpoint("/api/v1/consolidations/{belief_id}", "read")
    async def consolidation(request: Request, ctx: Ctx) -> Response:
        belief_id = request.path_params["belief_id"]
        space_id = ctx.space_id(None)
        sp = await svc.space(space_id, create=False)
        if svc.consolidation is not None and sp is not None and hasattr(sp, "patterns"):
            doc = await svc.run(svc.consolidation.beliefs_document, sp)
            for belief in doc["beliefs"]:
                if belief["id"] == belief_id:
                    return json_response(belief)
        raise ApiError(404, f"no consolidated belief {belief_id!r} in space {space_id!r}", code="CONSOLIDATION_NOT_FOUND",
                       field="belief_id", allowed="an id listed by GET /api/v1/consolidations", example="/api/v1/consolidations")

    @endpoint("/api/v1/consolidate", "write")
    async def consolidate_now(request: Request, ctx: Ctx) -> Response:
        space_id = ctx.space_id(None)
        sp = await svc.space(space_id, create=False)
        if svc.consolidation is None:
            raise ApiError(503, "consolidation is not available in this build", headers={"Retry-After": "60"})
        if sp is None:
            raise ApiError(404, f"no memory space {space_id!r}", code="SPACE_NOT_FOUND", field="X-Memory-Space",
                           allowed="a space that holds episodes", example="X-Memory-Space: agent-1")
        async with svc.writing():
            result = await svc.consolidation.run_now(space_id)
        return json_response(result)

    # ------------------------------------------------------------------ streams

    async def sse(ctx: Ctx, space_id: str | None, topic: str) -> Response:
        if topic == "memories":
            sub = svc.hub.subscribe(space_id)
        else:
            # The consolidation topic carries every space's runs: keep to the space the
            # client selected, else to those its key may use (all of them without keys).
            if ctx.named_space() is not None:
                spaces: frozenset[str] | None = frozenset((space_id,))
            elif ctx.key is not None and not ctx.key.all_spaces:
                spaces = frozenset(ctx.key.spaces)
            else:
                spaces = None
            sub = svc.hub.subscribe("\x00consolidation", payload_spaces=spaces)
        if sub is None:
            raise ApiError(503, "too many event streams are open", code="SERVER_BUSY", headers={"Retry-After": "5"})
        hello = {"topic": topic, "memory_space_id": space_id, "server_time": now_iso()}
        return SSEResponse(svc.hub.stream(sub, hello=hello), on_close=lambda: svc.hub.unsubscribe(sub))  # type: ignore[return-value]

    @endpoint("/api/v1/stream/memories", "read")
    async def stream_memories(request: Request, ctx: Ctx) -> Response:
        return await sse(ctx, ctx.space_id(None), "memories")

    @endpoint("/api/v1/stream/consolidation", "read")
    async def stream_consolidation(request: Request, ctx: Ctx) -> Response:
        return await sse(ctx, ctx.space_id(None), "consolidation")

    # ------------------------------------------------------------------ admin

    @endpoint("/api/v1/admin/backup", "admin")
    async def admin_backup(request: Request, ctx: Ctx) -> Response:
        body = S.require_object(await ctx.json_body(), "body", '{"target": "/backups/engram-1"}')
        target = S.get_str(body, "target", required=True, example='"/backups/engram-1"')
        assert target is not None
        if not Path(target).is_absolute():
            raise ApiError(400, "target: must be an absolute path on the server", field="target",
                           allowed="an absolute directory path", example='{"target": "/backups/engram-1"}')
        result = await svc.backup(Path(target))
        return json_response(result, 201)

    @endpoint("/api/v1/admin/checkpoint", "admin")
    async def admin_checkpoint(request: Request, ctx: Ctx) -> Response:
        t0 = time.perf_counter()
        await svc.checkpoint()
        return json_response({"checkpointed": True, "duration_s": round(time.perf_counter() - t0, 6)})

    @endpoint("/api/v1/admin/status", "read")
    async def admin_status(request: Request, ctx: Ctx) -> Response:
        import os
        # Like GET /api/v1/spaces: a key sees only the spaces it may use.
        spaces = ctx.visible_spaces()
        return json_response({"pid": os.getpid(), "data_dir": str(Path(svc.settings.data_dir).resolve()),
                              "version": VERSION, "auth": svc.auth_enabled, "spaces": spaces,
                              "uptime_s": round(time.monotonic() - svc.started_monotonic_s, 3),
                              "started_at": S.iso(svc.started_at)})

    # ------------------------------------------------------------------ docs

    from .openapi import DOCS_HTML, openapi_document

    spec_bytes = S.dumps(openapi_document(VERSION))

    async def openapi_json(request: Request) -> Response:
        return Response(spec_bytes, media_type=JSON)

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/alive", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/v1/system/health", system_health, methods=["GET"]),
        Route("/api/v1/memories/remember", remember, methods=["POST"]),
        Route("/api/v1/memories/bulk", bulk, methods=["POST"]),
        Route("/api/v1/episodes/remember", remember_episode, methods=["POST"]),
        Route("/api/v1/memories/recall", recall_route, methods=["GET", "POST"]),
        Route("/api/v1/memories/search", search, methods=["GET"]),
        Route("/api/v1/query/probabilistic", probabilistic, methods=["GET"]),
        Route("/api/v1/memories", memories_root, methods=["GET", "POST"]),
        Route("/api/v1/memories/{memory_id}", get_or_delete, methods=["GET", "DELETE"]),
        Route("/api/v1/spaces", spaces_route, methods=["GET", "POST"]),
        Route("/api/v1/spaces/create", create_space, methods=["POST"]),
        Route("/api/v1/query", query_route, methods=["POST"]),
        Route("/cluster/nodes", cluster_nodes, methods=["GET"]),
        Route("/cluster/health", cluster_health, methods=["GET"]),
        Route("/api/v1/consolidations", consolidations, methods=["GET"]),
        Route("/api/v1/consolidations/{belief_id}", consolidation, methods=["GET"]),
        Route("/api/v1/consolidate", consolidate_now, methods=["POST"]),
        Route("/api/v1/stream/memories", stream_memories, methods=["GET"]),
        Route("/api/v1/stream/consolidation", stream_consolidation, methods=["GET"]),
        Route("/api/v1/admin/backup", admin_backup, methods=["POST"]),
        Route("/api/v1/admin/checkpoint", admin_checkpoint, methods=["POST"]),
        Route("/api/v1/admin/status", admin_status, methods=["GET"]),
        Route("/api-docs/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]

    route_paths = frozenset(r.path for r in routes)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            path = request.url.path
            stripped = path.rstrip("/")
            hint = f"; drop the trailing slash: {stripped}" if stripped != path and stripped in route_paths else ""
            err = ApiError(404, f"no route {request.method} {path}{hint}", code="NOT_FOUND", field="path",
                           allowed="a path listed in /api-docs/openapi.json",
                           example=stripped if hint else "/api/v1/memories/recall?query=cell")
        elif exc.status_code == 405:
            err = ApiError(405, f"{request.method} is not allowed on {request.url.path}", field="method",
                           allowed=exc.headers.get("Allow", "") if exc.headers else "", example="see /docs",
                           headers=dict(exc.headers or {}))
        else:
            err = ApiError(exc.status_code if 400 <= exc.status_code <= 599 else 400, str(exc.detail))
        svc.metrics.observe("unmatched", request.method, err.status, 0.0)
        return error_response(err)

    async def any_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(ApiError(500, "internal error; the server log has the details"))

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: any_error})
    # Starlette answers a path with a stray trailing slash with a bare 307 to the path
    # without it: no error envelope, and clients that do not follow it (ours does not)
    # saw an empty success. The original Engram (axum) has no such redirect and answers
    # 404; so do we, in the envelope, naming the path to use instead.
    app.router.redirect_slashes = False
    return app


_SPACE_SETTINGS = ("durability", "decay", "dedup_threshold", "capacity", "dimension", "effects")


def _space_config(raw: Any) -> dict[str, Any]:
    """Validated SpaceConfig settings from POST /api/v1/spaces {"config": {...}}."""
    if raw is None:
        return {}
    example = '{"id": "agent-1", "config": {"durability": "sync", "decay": "power_law", "dedup_threshold": 0.95, "capacity": 100000}}'
    if not isinstance(raw, dict):
        raise ApiError(422, "config: expected an object", field="config", allowed="an object of space settings", example=example)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None and key in ("durability", "decay"):
            # Not nullable (unlike dedup_threshold and capacity); SpaceConfig's refusal
            # would name 'durability', a field the request does not have.
            allowed = "sync or async" if key == "durability" else "one of " + ", ".join(S.DECAY_KINDS)
            raise ApiError(400, f"config.{key}: null is not allowed", field=f"config.{key}", allowed=allowed,
                           example='{"id": "agent-1", "config": {"durability": "sync", "decay": "power_law"}}')
        if key == "durability":
            out[key] = S.get_enum(raw, key, ("sync", "async"), prefix="config.")
        elif key == "decay":
            out[key] = S.get_enum(raw, key, S.DECAY_KINDS, prefix="config.")
        elif key == "dedup_threshold":
            out[key] = None if value is None else S.get_number(raw, key, prefix="config.", lo=0.0, hi=1.0, example="0.95")
        elif key in ("capacity", "dimension"):
            hi = 65536 if key == "dimension" else 2**40
            if value is None and key == "capacity":
                out[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ApiError(400, f"config.{key}: {value!r} is not allowed", field=f"config.{key}",
                               allowed=f"an integer from 1 to {hi}", example=example)
            else:
                out[key] = value
        elif key == "effects":
            # Recall's cognitive effects (engram.memory.cognition); [] is plain similarity,
            # what a benchmark of the HTTP layer alone wants.
            allowed_effects = S.RECALL_EFFECTS
            if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
                raise ApiError(422, "config.effects: expected an array of effect names", field="config.effects",
                               allowed="an array of " + ", ".join(allowed_effects), example='{"id": "agent-1", "config": {"effects": []}}')
            for name in value:
                if name not in allowed_effects:
                    raise ApiError(400, f"config.effects: {name!r} is not an effect", field="config.effects",
                                   allowed="any of " + ", ".join(allowed_effects), example='{"id": "agent-1", "config": {"effects": ["priming"]}}')
            out[key] = tuple(e for e in allowed_effects if e in value)
        else:
            raise ApiError(400, f"config.{key}: is not a space setting", field=f"config.{key}",
                           allowed="durability, decay, dedup_threshold, capacity, dimension, effects", example=example)
    return out


def _not_found(memory_id: str, space_id: str) -> ApiError:
    return ApiError(404, f"no memory with id {memory_id!r} in space {space_id!r}", field="memory_id",
                    allowed="an id returned by remember, in the same memory space",
                    example="GET /api/v1/memories?limit=10 lists stored ids")


# The keys of a plain bulk item (see _parse_bulk).
_PLAIN_BULK_KEYS = frozenset({"content", "embedding", "confidence"})


def _parse_bulk(raw: bytes | memoryview, ctype: str, items_max: int, dim: int, space_id: str) -> list[dict[str, Any]]:
    """A bulk body as keyword arguments of ``Space.remember_many``, one dict per memory.
    Runs in a worker thread. Raises ApiError (400/413/415/422) naming the first bad item;
    the embeddings of all good items are converted and checked together."""
    items = _decode_bulk(raw, ctype, items_max)
    # msgpack embeddings may be packed float32 bytes; JSON's are lists of numbers.
    rows = S.packed_embeddings(items, dim) if ctype in _MSGPACK_TYPES else S.list_embeddings(items, dim)
    kws = []
    content_max = S.CONTENT_BYTES_MAX
    for i, item in enumerate(items):
        row = rows.get(i)
        if row is not None and len(item) <= 3 and _PLAIN_BULK_KEYS.issuperset(item):
            # A plain item (content, embedding, a float confidence) whose values parse_remember
            # takes as they are: the same keyword arguments without its per-field calls.
            # Anything else, valid or not, is parse_remember's to take or refuse.
            content = item.get("content")
            conf = item.get("confidence")
            if conf is None:
                conf = 0.7
            if type(content) is str and content and len(content) <= content_max and content.isascii() \
                    and "\x00" not in content and type(conf) is float and 0.0 <= conf <= 1.0:
                kws.append({"content": content, "embedding": row, "confidence": conf, "tags": (), "memory_type": "semantic"})
                continue
        if isinstance(item, dict):
            for key in ("memory_space_id", "memory_space"):
                if item.get(key) is not None and item[key] != space_id:
                    raise ApiError(400, f"items[{i}].{key}: {item[key]!r} differs from the request's space {space_id!r}",
                                   field=f"items[{i}].{key}", allowed="the request's space (set it with X-Memory-Space or ?space=)",
                                   example=f'"{space_id}"')
        if row is not None:
            kws.append(S.parse_remember(item, dim=dim, prefix=f"items[{i}].", embedding=row))
        else:
            kws.append(S.parse_remember(item, dim=dim, prefix=f"items[{i}]."))
    return kws


def _unpack_stream(raw: bytes | memoryview, items_max: int) -> list[Any]:
    """msgpack objects back to back (at most items_max + 1 of them). Raises ValueError
    if the body ends inside an object."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(raw) + 1)
    unpacker.feed(raw)
    objs = []
    complete_at = 0
    for obj in unpacker:
        objs.append(obj)
        complete_at = unpacker.tell()
        if len(objs) > items_max:
            return objs
    if complete_at != len(raw):
        raise ValueError("truncated")
    return objs


def _msgpack_reason(exc: BaseException) -> str:
    """What msgpack refused, in words: its own messages say "4294967295 exceeds
    max_array_len(5)" or nothing at all (StackError, FormatError)."""
    text = str(exc)
    if isinstance(exc, msgpack.StackError):
        return "it nests too deeply"
    if isinstance(exc, msgpack.FormatError):
        return "it holds a byte that starts no msgpack value (0xc1 is reserved)"
    if "exceeds max_" in text:
        return f"a length prefix declares more than the body holds ({text[:80]})"
    if "incomplete input" in text:
        return "it ends inside a value (truncated, or a length prefix too long)"
    if "map key" in text:
        return "a map key is not a string"
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


# Content types of a msgpack bulk body (any other accepted type is JSON).
_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


def _decode_bulk(raw: bytes | memoryview, ctype: str, items_max: int) -> list[Any]:
    """Bulk bodies: msgpack (an array of maps, or maps back to back) or JSON lines
    (a JSON array is accepted too). Raises ApiError 400/413/415."""
    example = '{"content": "a fact", "embedding": [...768 numbers...], "confidence": 0.9} (one per line)'
    if ctype in _MSGPACK_TYPES:
        try:
            try:
                # One top-level array (the usual body): unpackb reads the buffer in place,
                # where an Unpacker would first copy all of it into its own.
                objs = [msgpack.unpackb(raw, raw=False, strict_map_key=True)] if len(raw) else []
            except msgpack.ExtraData:
                objs = _unpack_stream(raw, items_max)  # maps back to back
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid msgpack: {_msgpack_reason(exc)}", field="body",
                           allowed="msgpack maps (or one array of maps) with remember's fields", example=example) from None
        items = objs[0] if len(objs) == 1 and isinstance(objs[0], list) else objs
    elif ctype in ("", "application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines",
                   "application/json", "text/plain", "application/ndjson", "application/json-seq"):
        if not isinstance(raw, bytes):
            raw = bytes(raw)  # a large body arrives as a memoryview; lines are split on bytes
        stripped = raw.lstrip()
        if stripped.startswith(b"["):
            items = S.parse_json(raw)
        else:
            lines = [line for line in raw.split(b"\n") if line.strip()]
            if len(lines) > items_max:
                raise ApiError(413, f"the body holds more than {items_max} memories", field="body",
                               allowed=f"at most {items_max} memories per request", example="split the file into chunks")
            items = []
            for n, line in enumerate(lines):
                try:
                    items.append(S.parse_json(line, what=f"line {n + 1}"))
                except ApiError as err:
                    err.field = f"line {n + 1}"
                    raise
    else:
        raise ApiError(415, f"Content-Type {ctype!r} is not accepted here", field="Content-Type",
                       allowed="application/x-ndjson (JSON lines) or application/msgpack",
                       example="Content-Type: application/x-ndjson")
    if not isinstance(items, list):
        raise ApiError(422, "the body must hold memories: JSON lines, a JSON array, or msgpack maps", field="body",
                       allowed="a sequence of objects", example=example)
    if len(items) > items_max:
        raise ApiError(413, f"the body holds {len(items)} memories; at most {items_max} per request", field="body",
                       allowed=f"at most {items_max} memories", example="split the file into chunks")
    return items
