"""The OpenAPI 3.0 document served at /api-docs/openapi.json, and the /docs page.

Written by hand from the handlers in ``http.py`` and the validators in ``schemas.py``;
the schemathesis test (tests/test_http_fuzz.py) checks that every response matches it
and that no generated request gets a 5xx. Schemas allow additional properties where
the server may add fields later, so clients written for the original keep working.

The docs page is self-contained (no CDN: the machine may be offline): a little script
fetches the spec and renders each operation with its parameters and schemas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document", "DOCS_HTML"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = _ref("Error")
SPACE_HEADER = {"name": "X-Memory-Space", "in": "header", "required": False,
                "description": "Memory space (first choice); 3-64 of a-z, 0-9, _ and -.",
                "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{2,63}$"}}
SPACE_QUERY = {"name": "space", "in": "query", "required": False, "description": "Memory space (second choice).",
               "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{2,63}$"}}
SPACE_PARAMS = [SPACE_HEADER, SPACE_QUERY]


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input (the envelope names the field and shows an example)", 401: "Missing or invalid API key",
            403: "The key may not use this space or lacks a permission", 404: "Not found; a path with a trailing slash gets a 404 too, naming the path without it", 409: "Conflict",
            413: "Body too large", 415: "Unsupported Content-Type", 422: "Body of the wrong structure",
            429: "Above the key's rate (see Retry-After)",
            507: "No space left on the target's file system", 503: "Busy or shutting down (see Retry-After)"}
    return {str(c): _json(ERR, text[c]) for c in codes}


AUTH_ERRS = (401, 403, 429)
BODY_TIMEOUT_408 = "The body did not arrive within body_timeout_s plus 1 s per MiB; the connection is closed"
TRAILING_SLASH_404 = "A path with a trailing slash: no such route; the envelope names the path without the slash"
BUSY_503 = "The server is out of file descriptors or shutting down; retry after Retry-After seconds"

RECALL_PARAMS = [
    {"name": "query", "in": "query", "schema": {"type": "string", "maxLength": 4096}, "description": "Text cue (lexical match)."},
    {"name": "embedding", "in": "query", "schema": {"type": "string"},
     "description": "JSON array of the space's dimension (768) of finite numbers: a cosine cue."},
    {"name": "max_results", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
    {"name": "threshold", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1},
     "description": "Minimum match score. Default 0.5 for an embedding-only cue, 0 otherwise."},
    {"name": "confidence_threshold", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1},
     "description": "Alias of threshold."},
    {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["similarity", "spreading", "hybrid"], "default": "similarity"}},
    {"name": "from_time", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Only memories observed at or after."},
    {"name": "to_time", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Only memories observed before."},
    {"name": "location", "in": "query", "schema": {"type": "string", "maxLength": 4096}, "description": "Only memories at this location (case-insensitive)."},
    {"name": "memory_type", "in": "query", "schema": {"type": "string"}, "description": "Comma-separated memory types to keep."},
]


def _schemas() -> dict[str, Any]:
    conf = {"type": "object", "required": ["value", "category", "reasoning"], "properties": {
        "value": {"type": "number", "minimum": 0, "maximum": 1},
        "category": {"type": "string", "enum": ["High", "Medium", "Low"]},
        "reasoning": {"type": "string"}}}
    nullable_str = {"type": "string", "nullable": True}
    embedding = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 65536,
                 "description": "The space's dimension (768 by default) of finite numbers, not all zero."}
    recalled = {"type": "object", "required": ["id", "content", "confidence", "activation_level", "similarity_score", "retrieval_path"],
                "properties": {
                    "id": {"type": "string"}, "content": {"type": "string"}, "confidence": _ref("Confidence"),
                    "activation_level": {"type": "number", "minimum": 0, "maximum": 1},
                    "similarity_score": {"type": "number", "minimum": 0, "maximum": 1},
                    "retrieval_path": {"type": "string"}, "observed_at": nullable_str, "last_access": nullable_str,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "memory_type": {"type": "string"}, "location": nullable_str}}
    memory = {"type": "object", "required": ["id", "content", "confidence", "memory_type"], "properties": {
        "id": {"type": "string"}, "content": {"type": "string"}, "confidence": _ref("Confidence"),
        "created_at": nullable_str, "observed_at": nullable_str, "last_access": nullable_str,
        "access_count": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}},
        "memory_type": {"type": "string", "enum": ["semantic", "episodic", "procedural", "working"]},
        "decay_function": nullable_str, "location": nullable_str, "has_embedding": {"type": "boolean"},
        "embedding": {"type": "array", "items": {"type": "number"}, "nullable": True}}}
    return {
        "Confidence": conf,
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message", "educational_context", "cognitive_guidance"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "educational_context": {"type": "string"}, "cognitive_guidance": {"type": "string"},
                           "field": {"type": "string"}, "allowed": {"type": "string"}, "example": {"type": "string"}}}}},
        "RememberRequest": {"type": "object", "required": ["content"], "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
            "content": {"type": "string", "minLength": 1, "maxLength": 102400, "description": "At most 100 KB of UTF-8."},
            "embedding": embedding,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7},
            "tags": {"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "maxLength": 128}},
            "memory_type": {"type": "string", "enum": ["semantic", "episodic", "procedural", "working"], "default": "semantic"},
            "timestamp": {"type": "string", "format": "date-time", "description": "When it was observed (default now)."},
            "location": {"type": "string", "maxLength": 1024},
            "decay": {"type": "string", "enum": ["exponential", "power_law", "two_component", "hybrid", "none"]},
            # An episode's fields too, so that the lines 'engram export' writes load back.
            "who": {"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "maxLength": 128}},
            "why": {"type": "string", "minLength": 1, "maxLength": 1024}, "how": {"type": "string", "minLength": 1, "maxLength": 1024},
            "emotional_valence": {"type": "number", "minimum": -1, "maximum": 1},
            "importance": {"type": "number", "minimum": 0, "maximum": 1},
            "metadata": {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}},
            "memory_space_id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{2,63}$"}},
            "example": {"content": "The mitochondria is the powerhouse of the cell", "confidence": 0.95, "tags": ["biology"]}},
        "EpisodeRequest": {"type": "object", "required": ["when", "what"], "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
            "when": {"type": "string", "format": "date-time"},
            "what": {"type": "string", "minLength": 1, "maxLength": 102400},
            "where_location": {"type": "string", "minLength": 1, "maxLength": 1024},
            "who": {"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "maxLength": 128}},
            "why": {"type": "string", "minLength": 1, "maxLength": 1024}, "how": {"type": "string", "minLength": 1, "maxLength": 1024},
            "embedding": embedding,
            "emotional_valence": {"type": "number", "minimum": -1, "maximum": 1},
            "importance": {"type": "number", "minimum": 0, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "metadata": {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}},
            "memory_space_id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{2,63}$"}},
            "example": {"when": "2024-05-01T09:30:00Z", "what": "Met Ana in the lab", "where_location": "lab", "who": ["ana"], "importance": 0.6}},
        "RememberResponse": {"type": "object", "required": ["memory_id", "storage_confidence", "consolidation_state", "observed_at", "stored_at"],
                             "properties": {"memory_id": {"type": "string"}, "storage_confidence": _ref("Confidence"),
                                            "consolidation_state": {"type": "string"}, "observed_at": {"type": "string"},
                                            "stored_at": {"type": "string"}, "memory_space_id": {"type": "string"},
                                            "outcome": {"type": "string", "enum": ["stored", "merged", "kept"],
                                                        "description": "stored; merged into the near-duplicate memory_id "
                                                                       "(it keeps its id); kept: memory_id, a near-duplicate "
                                                                       "at least as confident, is unchanged"}}},
        "BulkResponse": {"type": "object", "required": ["memory_ids", "count"], "properties": {
            "memory_ids": {"type": "array", "items": {"type": "string"}}, "count": {"type": "integer", "minimum": 0},
            "merged": {"type": "integer", "minimum": 0, "description": "items merged into a stored near-duplicate (its id is listed)"},
            "kept": {"type": "integer", "minimum": 0, "description": "items left out for a near-duplicate at least as confident (its id is listed)"},
            "memory_space_id": {"type": "string"}, "stored_at": {"type": "string"},
            "read_seconds": {"type": "number", "minimum": 0, "description": "Server time spent receiving the body"},
            "parse_seconds": {"type": "number", "minimum": 0, "description": "Server time decoding and checking the body (a worker thread)"},
            "engine_seconds": {"type": "number", "minimum": 0, "description": "Server time in remember_many: planning, WAL write, fsync"}}},
        "RecalledMemory": recalled,
        "Memory": memory,
        "RecallResponse": {"type": "object", "required": ["memories", "recall_confidence", "query_analysis"], "properties": {
            "memories": {"type": "object", "required": ["vivid", "associated", "reconstructed"], "properties": {
                "vivid": {"type": "array", "items": _ref("RecalledMemory")},
                "associated": {"type": "array", "items": _ref("RecalledMemory")},
                "reconstructed": {"type": "array", "items": _ref("RecalledMemory")}}},
            "recall_confidence": _ref("Confidence"), "query_analysis": {"type": "object"},
            "total": {"type": "integer", "minimum": 0}}},
        "ProbabilisticResponse": {"type": "object", "required": ["memories", "confidence_interval"], "properties": {
            "memories": {"type": "array", "items": _ref("RecalledMemory")},
            "confidence_interval": {"type": "object", "required": ["lower", "upper", "point", "width"], "properties": {
                k: {"type": "number", "minimum": 0, "maximum": 1} for k in ("lower", "upper", "point", "width")}},
            "evidence_chain": {"type": "array", "items": {"type": "object"}},
            "uncertainty_sources": {"type": "array", "items": {"type": "object"}}}},
        "MemoryList": {"type": "object", "required": ["memories", "count", "pagination"], "properties": {
            "memories": {"type": "array", "items": _ref("Memory")}, "count": {"type": "integer", "minimum": 0},
            "pagination": {"type": "object", "required": ["offset", "limit", "returned"], "properties": {
                "offset": {"type": "integer"}, "limit": {"type": "integer"}, "returned": {"type": "integer"}}}}},
        "SearchResponse": {"type": "object", "required": ["memories", "total"], "properties": {
            "memories": {"type": "array", "items": _ref("RecalledMemory")}, "total": {"type": "integer", "minimum": 0}}},
        "DeleteResponse": {"type": "object", "required": ["memory_id", "deleted"], "properties": {
            "memory_id": {"type": "string"}, "deleted": {"type": "boolean"}}},
        "Space": {"type": "object", "required": ["id", "persistence_root", "created_at"], "properties": {
            "id": {"type": "string"}, "persistence_root": {"type": "string"}, "created_at": {"type": "string"},
            "memories": {"type": "integer", "minimum": 0}, "dimension": {"type": "integer"},
            "effects": {"type": "array", "items": {"type": "string"}, "nullable": True}}},
        "SpaceList": {"type": "object", "required": ["spaces"], "properties": {"spaces": {"type": "array", "items": _ref("Space")}}},
        "CreateSpaceRequest": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{2,63}$"},
            "config": {"type": "object", "additionalProperties": False, "description": "Settings fixed at creation.", "properties": {
                "durability": {"type": "string", "enum": ["sync", "async"]},
                "decay": {"type": "string", "enum": ["exponential", "power_law", "two_component", "hybrid", "none"]},
                "dedup_threshold": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
                "capacity": {"type": "integer", "minimum": 1, "nullable": True},
                "dimension": {"type": "integer", "minimum": 1, "maximum": 65536},
                "effects": {"type": "array", "maxItems": 5, "items": {"type": "string", "enum": [
                    "priming", "fan", "interference", "reconsolidation", "spacing"]},
                    "description": "Cognitive effects that shape recall (all by default; [] for plain similarity)."}}}},
            "example": {"id": "agent-1"}},
        "Consolidations": {"type": "object", "required": ["generated_at", "beliefs", "stats"], "properties": {
            "generated_at": {"type": "string"}, "beliefs": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "strength": {"type": "number"}, "schema_confidence": {"type": "number"},
                "last_consolidated": {"type": "string"}, "citations": {"type": "array", "items": {"type": "object"}},
                "stats": {"type": "object"}}}}, "stats": {"type": "object"}}},
        "Health": {"type": "object", "required": ["status", "service", "version", "timestamp"], "properties": {
            "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]}, "service": {"type": "string"},
            "version": {"type": "string"}, "timestamp": {"type": "string"}}},
        "SystemHealth": {"type": "object", "required": ["status", "checks", "spaces"], "properties": {
            "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
            "checks": {"type": "array", "items": {"type": "object"}},
            "spaces": {"type": "array", "items": {"type": "object", "required": ["space", "memories", "pressure", "wal_lag_ms", "consolidation_rate"],
                                                   "properties": {"space": {"type": "string"}, "memories": {"type": "integer"},
                                                                  "pressure": {"type": "number"}, "wal_lag_ms": {"type": "number"},
                                                                  "consolidation_rate": {"type": "number"}}}}}},
        "BackupRequest": {"type": "object", "required": ["target"], "properties": {"target": {"type": "string", "description": "Absolute directory on the server, absent or empty."}}},
        "BackupResponse": {"type": "object", "required": ["target", "spaces", "files", "bytes"], "properties": {
            "target": {"type": "string"}, "spaces": {"type": "array", "items": {"type": "string"}},
            "files": {"type": "integer"}, "bytes": {"type": "integer"}, "created_at": {"type": "string"}}},
    }


def openapi_document(version: str) -> dict[str, Any]:
    body = lambda name, required=True: {"required": required, "content": {"application/json": {"schema": _ref(name)}}}  # noqa: E731
    memory_id_param = {"name": "memory_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Liveness and version", "tags": ["system"],
                            "responses": {"200": _json(_ref("Health"), "Serving"), "503": _json(_ref("Health"), "Shutting down")}}},
        "/health/alive": {"get": {"operationId": "healthAlive", "summary": "Liveness", "tags": ["system"],
                                  "responses": {"200": _json(_ref("Health"), "Serving"), "503": _json(_ref("Health"), "Shutting down")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "tags": ["system"],
                             "description": "With API keys on, this needs a key for every space (--space '*'): "
                                            "each sample is labelled with its space id.",
                             "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_errors(*AUTH_ERRS)}}},
        "/api/v1/system/health": {"get": {"operationId": "systemHealth", "summary": "Health with per-space figures", "tags": ["system"],
                                          "responses": {"200": _json(_ref("SystemHealth"), "Health"), "503": _json(_ref("SystemHealth"), "Unhealthy"),
                                                        **_errors(*AUTH_ERRS)}}},
        "/api/v1/memories/remember": {"post": {
            "operationId": "remember", "summary": "Store a memory (201 once fsync'd)", "tags": ["memories"],
            "parameters": SPACE_PARAMS, "requestBody": body("RememberRequest"),
            "responses": {"201": _json(_ref("RememberResponse"), "Stored"), **_errors(400, 413, 422, 503, *AUTH_ERRS)}}},
        "/api/v1/memories/bulk": {"post": {
            "operationId": "rememberBulk", "summary": "Store many memories in one WAL batch and one fsync", "tags": ["memories"],
            "description": "Body: JSON lines (application/x-ndjson, one remember object per line), a JSON array of them, "
                           "or msgpack (application/msgpack): an array of maps, or maps back to back, with remember's "
                           "fields. In msgpack, send each embedding as bin: the raw little-endian float32 bytes, "
                           "4 x dimension of them (3,072 for 768), e.g. numpy's v.astype('<f4').tobytes(); the server "
                           "reads them straight into one matrix. An array of numbers works too, at ~10x the cost. "
                           "All or nothing: a bad item gets 4xx naming items[i].field and nothing is stored.",
            "parameters": SPACE_PARAMS,
            "requestBody": {"required": True, "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"201": _json(_ref("BulkResponse"), "Stored"), **_errors(400, 413, 415, 422, 503, *AUTH_ERRS)}}},
        "/api/v1/episodes/remember": {"post": {
            "operationId": "rememberEpisode", "summary": "Store an episode (never deduplicated)", "tags": ["memories"],
            "parameters": SPACE_PARAMS, "requestBody": body("EpisodeRequest"),
            "responses": {"201": _json(_ref("RememberResponse"), "Stored"), **_errors(400, 413, 422, 503, *AUTH_ERRS)}}},
        "/api/v1/memories/recall": {
            "get": {"operationId": "recall", "summary": "Recall by text, embedding, time and place", "tags": ["memories"],
                    "parameters": SPACE_PARAMS + RECALL_PARAMS,
                    "responses": {"200": _json(_ref("RecallResponse"), "Recalled"), **_errors(400, 503, *AUTH_ERRS)}},
        },
        "/api/v1/query/probabilistic": {"get": {
            "operationId": "probabilisticQuery", "summary": "Recall with a confidence interval", "tags": ["memories"],
            "parameters": SPACE_PARAMS + RECALL_PARAMS + [
                {"name": "include_evidence", "in": "query", "schema": {"type": "boolean"}},
                {"name": "include_uncertainty", "in": "query", "schema": {"type": "boolean"}}],
            "responses": {"200": _json(_ref("ProbabilisticResponse"), "Recalled"), **_errors(400, 503, *AUTH_ERRS)}}},
        "/api/v1/memories/search": {"get": {
            "operationId": "search", "summary": "Lexical search", "tags": ["memories"],
            "parameters": SPACE_PARAMS + [{"name": "query", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 4096}},
                                          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _json(_ref("SearchResponse"), "Matches"), **_errors(400, 503, *AUTH_ERRS)}}},
        "/api/v1/memories": {"get": {
            "operationId": "listMemories", "summary": "List memories by time, then id", "tags": ["memories"],
            "parameters": SPACE_PARAMS + [
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "include_embeddings", "in": "query", "schema": {"type": "boolean", "default": False}}],
            "responses": {"200": _json(_ref("MemoryList"), "A page of memories"), **_errors(400, *AUTH_ERRS)}}},
        "/api/v1/memories/{memory_id}": {
            "get": {"operationId": "getMemory", "summary": "One memory", "tags": ["memories"],
                    "parameters": SPACE_PARAMS + [memory_id_param, {"name": "include_embeddings", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": {"200": _json(_ref("Memory"), "The memory"), **_errors(400, 404, *AUTH_ERRS)}},
            "delete": {"operationId": "deleteMemory", "summary": "Forget a memory (a WAL tombstone)", "tags": ["memories"],
                       "parameters": SPACE_PARAMS + [memory_id_param],
                       "responses": {"200": _json(_ref("DeleteResponse"), "Deleted"), **_errors(400, 404, 503, *AUTH_ERRS)}}},
        "/api/v1/spaces": {
            "get": {"operationId": "listSpaces", "summary": "Memory spaces", "tags": ["spaces"],
                    "responses": {"200": _json(_ref("SpaceList"), "Spaces"), **_errors(*AUTH_ERRS)}},
            "post": {"operationId": "createSpace", "summary": "Create a memory space (200 if it existed)", "tags": ["spaces"],
                     "requestBody": body("CreateSpaceRequest"),
                     "responses": {"201": _json(_ref("Space"), "Created"), "200": _json(_ref("Space"), "Already existed"),
                                   **_errors(400, 409, 413, 422, 503, *AUTH_ERRS)}}},
        "/api/v1/consolidations": {"get": {
            "operationId": "consolidations", "summary": "Consolidated beliefs (patterns from episodes)", "tags": ["consolidation"],
            "parameters": SPACE_PARAMS + [{"name": "max_episodes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}}],
            "responses": {"200": _json(_ref("Consolidations"), "Beliefs"), **_errors(400, *AUTH_ERRS)}}},
        "/api/v1/consolidations/{belief_id}": {"get": {
            "operationId": "consolidation", "summary": "One belief", "tags": ["consolidation"],
            "parameters": SPACE_PARAMS + [{"name": "belief_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The belief", "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(400, 404, *AUTH_ERRS)}}},
        "/cluster/nodes": {"get": {
            "operationId": "clusterNodes", "summary": "Cluster members as SWIM sees them (a lone server lists itself)",
            "tags": ["cluster"],
            "responses": {"200": {"description": "nodes", "content": {"application/json": {"schema": {
                "type": "object", "required": ["mode", "nodes", "count"],
                "properties": {"mode": {"type": "string"}, "count": {"type": "integer"},
                               "nodes": {"type": "array", "items": {"type": "object"}}}}}}},
                          **_errors(*AUTH_ERRS)}}},
        "/cluster/health": {"get": {
            "operationId": "clusterHealth", "summary": "Membership counts, partition state, confidence penalty",
            "tags": ["cluster"],
            "responses": {"200": {"description": "health", "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(*AUTH_ERRS)}}},
        "/api/v1/query": {"post": {
            "operationId": "query", "summary": "Run one statement of the query language: RECALL, SPREAD FROM, CONSOLIDATE",
            "tags": ["query"], "parameters": SPACE_PARAMS,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["query"],
                "properties": {"query": {"type": "string", "example": 'RECALL "mitochondria" LIMIT 5'},
                               "memory_space_id": {"type": "string"}}}}}},
            "responses": {"200": {"description": "memories (RECALL), activations (SPREAD) or patterns (CONSOLIDATE)",
                                  "content": {"application/json": {"schema": {"type": "object", "required": ["operation"],
                                      "properties": {"operation": {"type": "string"}, "memories": {"type": "array", "items": {"type": "object"}},
                                                     "activations": {"type": "object"}, "patterns": {"type": "array", "items": {"type": "object"}}}}}}},
                          **_errors(400, 413, 422, *AUTH_ERRS)}}},
        "/api/v1/consolidate": {"post": {
            "operationId": "consolidate", "summary": "Consolidate the space's episodes into semantic patterns now",
            "tags": ["consolidation"], "parameters": SPACE_PARAMS,
            "responses": {"200": {"description": "The run's summary (episodes, patterns, records_written, duration_s)",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(400, 404, 503, *AUTH_ERRS)}}},
        "/api/v1/stream/memories": {"get": {
            "operationId": "streamMemories", "summary": "Server-sent events: memory_stored, episode_stored, memory_deleted, memories_bulk_stored",
            "tags": ["streams"], "parameters": SPACE_PARAMS,
            "x-streaming": True,
            "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {"schema": {}}}},
                          **_errors(400, 503, *AUTH_ERRS)}}},
        "/api/v1/admin/backup": {"post": {
            "operationId": "backup", "summary": "Consistent snapshot of the data directory into a server path", "tags": ["admin"],
            "requestBody": body("BackupRequest"),
            "responses": {"201": _json(_ref("BackupResponse"), "Copied"), **_errors(400, 409, 413, 422, 507, *AUTH_ERRS)}}},
    }
    # Any path with a stray trailing slash is a 404 in the envelope naming the path to use
    # (Starlette's bare 307 is off, as in the original Engram): documented on every
    # operation, since tools that match paths loosely map '/x/' onto '/x'.
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"].setdefault("404", _json(ERR, TRAILING_SLASH_404))
            operation["responses"].setdefault("503", _json(ERR, BUSY_503))  # any route can run out of file descriptors
            if "requestBody" in operation:  # the body deadline (body_timeout_s) applies to every body
                operation["responses"].setdefault("408", _json(ERR, BODY_TIMEOUT_408))
    return {
        "openapi": "3.0.3",
        "info": {"title": "Engram", "version": version,
                 "description": "A cognitive memory database: remember, recall, spread, decay, consolidate. "
                                "Errors use the envelope {error: {code, message, educational_context, cognitive_guidance}}. "
                                "A path with a trailing slash is a 404 (NOT_FOUND, field 'path'), never a redirect. "
                                "Space selection: X-Memory-Space header, then ?space=, then the body's memory_space_id, then 'default'."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "engram_key_<id>_<secret>; required on non-loopback addresses"}}},
        "security": [{}, {"bearer": []}],
    }


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Engram API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafafa}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
main{max-width:1000px;margin:0 auto;padding:20px}
.op{background:#fff;border:1px solid #dde;border-radius:6px;margin:10px 0;padding:10px 14px}
.m{display:inline-block;min-width:62px;font-weight:700;text-transform:uppercase;color:#fff;border-radius:4px;padding:2px 6px;margin-right:8px;text-align:center}
.get{background:#2a9d8f}.post{background:#e76f51}.delete{background:#9b2226}
code,pre{font:13px ui-monospace,monospace;background:#f1f3f5;border-radius:4px}pre{padding:8px;overflow:auto;max-height:320px}
summary{cursor:pointer}table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;font-size:13px}
</style></head><body>
<header><h1>Engram HTTP API</h1><div id="desc"></div></header>
<main><p>The machine-readable document: <a href="/api-docs/openapi.json"><code>/api-docs/openapi.json</code></a>.
Try a call with <code>curl -X POST localhost:7432/api/v1/memories/remember -d '{"content":"The mitochondria is the powerhouse of the cell","confidence":0.95}'</code>.</p>
<div id="ops">Loading…</div></main>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]))}
function deref(spec,s){if(s&&s.$ref){return spec.components.schemas[s.$ref.split('/').pop()]}return s}
fetch('/api-docs/openapi.json').then(r=>r.json()).then(spec=>{
 document.getElementById('desc').textContent=spec.info.description;
 let html='';
 for(const [path,item] of Object.entries(spec.paths)){for(const [method,op] of Object.entries(item)){
  html+='<div class="op"><details><summary><span class="m '+method+'">'+method+'</span><code>'+esc(path)+'</code> — '+esc(op.summary||'')+'</summary>';
  if(op.description)html+='<p>'+esc(op.description)+'</p>';
  if(op.parameters&&op.parameters.length){html+='<table><tr><th>parameter</th><th>in</th><th>schema</th><th>about</th></tr>';
   for(const p of op.parameters){html+='<tr><td><code>'+esc(p.name)+'</code>'+(p.required?' *':'')+'</td><td>'+p.in+'</td><td><code>'+esc(JSON.stringify(p.schema))+'</code></td><td>'+esc(p.description||'')+'</td></tr>'}
   html+='</table>'}
  if(op.requestBody){for(const [ct,c] of Object.entries(op.requestBody.content)){html+='<p>Body <code>'+ct+'</code></p><pre>'+esc(JSON.stringify(deref(spec,c.schema),null,2))+'</pre>'}}
  html+='<p>Responses</p><ul>';for(const [code,r] of Object.entries(op.responses)){html+='<li><b>'+code+'</b> '+esc(r.description)+'</li>'}html+='</ul>';
  html+='</details></div>'}}
 html+='<h2>Schemas</h2>';for(const [n,s] of Object.entries(spec.components.schemas)){html+='<details class="op"><summary><code>'+n+'</code></summary><pre>'+esc(JSON.stringify(s,null,2))+'</pre></details>'}
 document.getElementById('ops').innerHTML=html;
}).catch(e=>{document.getElementById('ops').textContent='Could not load the OpenAPI document: '+e});
</script></body></html>
"""
