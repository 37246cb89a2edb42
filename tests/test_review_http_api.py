"""HTTP requests the first review found mishandled: each gets its documented answer.

Proves: a remember/episode/bulk request whose short text field (location, where_location,
why, how) the engine refuses is a 400 naming the request's own field and changes
nothing (no space appears); POST recall refuses filter values of the wrong JSON type
instead of silently ignoring them; the consolidation event stream keeps to the space
the client selected (and to a key's spaces). How: a real server process
(tests/conftest.py), raw httpx requests.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import vec
from test_http_errors import check_envelope


def space_ids(c) -> set[str]:
    return {s["id"] for s in c.get("/api/v1/spaces").json()["spaces"]}


LONG = "x" * 1025

SHORT_TEXT_CASES = [
    # (space, path, kwargs, field)
    ("fresh-location", "/api/v1/memories/remember", {"json": {"content": "a", "location": LONG}}, "location"),
    ("fresh-where", "/api/v1/episodes/remember", {"json": {"what": "a", "when": "2024-01-01T00:00:00Z", "where_location": LONG}}, "where_location"),
    ("fresh-why", "/api/v1/episodes/remember", {"json": {"what": "a", "when": "2024-01-01T00:00:00Z", "why": LONG}}, "why"),
    ("fresh-how", "/api/v1/episodes/remember", {"json": {"what": "a", "when": "2024-01-01T00:00:00Z", "how": LONG}}, "how"),
    ("fresh-bulk", "/api/v1/memories/bulk",
     {"content": json.dumps({"content": "a", "location": LONG}).encode(), "headers": {"Content-Type": "application/x-ndjson"}},
     "items[0].location"),
]


@pytest.mark.parametrize("space,path,kw,field", SHORT_TEXT_CASES, ids=[c[0] for c in SHORT_TEXT_CASES])
def test_too_long_short_text_is_refused_before_anything_changes(module_server, space, path, kw, field):
    """The HTTP layer allowed 4096 characters where the engine allows 1024: the request
    created its space, then the engine refused it (naming items[0].location for a single
    remember, and saying 'expected a string' of a string)."""
    with module_server.client() as c:
        headers = {"X-Memory-Space": space, **kw.get("headers", {})}
        r = c.post(path, **{k: v for k, v in kw.items() if k != "headers"}, headers=headers)
        err = check_envelope(r, 400, field)
        assert "1024" in err["allowed"], err
        assert space not in space_ids(c), "a rejected request created its space"
        # The limit itself is accepted.
        ok_kw = json.loads(json.dumps(kw.get("json", {})).replace(LONG, "x" * 1024)) if "json" in kw else None
        if ok_kw is not None:
            assert c.post(path, json=ok_kw, headers={"X-Memory-Space": space}).status_code == 201


def test_served_schema_states_the_short_text_limit(module_server):
    with module_server.client() as c:
        schemas = c.get("/api-docs/openapi.json").json()["components"]["schemas"]
    assert schemas["RememberRequest"]["properties"]["location"]["maxLength"] == 1024
    for name in ("where_location", "why", "how"):
        assert schemas["EpisodeRequest"]["properties"][name]["maxLength"] == 1024


WRONG_TYPE_RECALL = [
    ({"query": "fact", "threshold": [0.9]}, "threshold"),
    ({"query": "fact", "max_results": {"n": 1}}, "max_results"),
    ({"query": "fact", "mode": ["spreading"]}, "mode"),
    ({"query": "fact", "location": {"name": "lab"}}, "location"),
    ({"query": "fact", "from_time": ["2024-01-01T00:00:00Z"]}, "from_time"),
    ({"query": {"text": "fact"}}, "query"),
    ({"query": "fact", "memory_type": [1]}, "memory_type"),
]


@pytest.mark.parametrize("body,field", WRONG_TYPE_RECALL, ids=[c[1] for c in WRONG_TYPE_RECALL])
def test_post_recall_refuses_filters_of_the_wrong_type(module_server, body, field):
    """These were dropped without a word: a client filtering by location or threshold
    got unfiltered results with a 200."""
    with module_server.client(headers={"X-Memory-Space": "recall-types"}) as c:
        check_envelope(c.post("/api/v1/memories/recall", json=body), 422, field)


def test_post_recall_memory_type_array_filters(module_server):
    with module_server.client(headers={"X-Memory-Space": "recall-mtype"}) as c:
        assert c.post("/api/v1/memories/remember", json={"content": "fact one", "embedding": vec(1)}).status_code == 201
        assert c.post("/api/v1/memories/remember", json={"content": "fact two", "embedding": vec(2),
                                                          "memory_type": "procedural"}).status_code == 201
        r = c.post("/api/v1/memories/recall", json={"query": "fact", "memory_type": ["procedural"]})
        assert r.status_code == 200, r.text
        got = r.json()["memories"]
        assert [m["content"] for m in got["vivid"] + got["associated"]] == ["fact two"]


def _listen(server, headers, events, stop_space):
    with server.client() as c, c.stream("GET", "/api/v1/stream/consolidation", headers=headers, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                doc = json.loads(line[5:])
                events.append(doc)
                if doc.get("memory_space_id") == stop_space and "episodes" in doc:
                    return


def test_consolidation_stream_keeps_to_the_selected_space(module_server):
    """A client watching space A received every space's consolidation events."""
    events: list[dict] = []
    with module_server.client() as c:
        for space in ("watch-a", "other-b"):
            r = c.post("/api/v1/episodes/remember", headers={"X-Memory-Space": space},
                       json={"what": "coffee", "when": "2024-01-01T00:00:00Z", "embedding": vec(3)})
            assert r.status_code == 201, r.text
        listener = threading.Thread(target=_listen, args=(module_server, {"X-Memory-Space": "watch-a"}, events, "watch-a"), daemon=True)
        listener.start()
        time.sleep(0.5)
        assert c.post("/api/v1/consolidate", headers={"X-Memory-Space": "other-b"}, json={}).status_code == 200
        assert c.post("/api/v1/consolidate", headers={"X-Memory-Space": "watch-a"}, json={}).status_code == 200
        listener.join(10)
    spaces = [e.get("memory_space_id") for e in events[1:]]  # events[0] is the 'connected' hello
    assert "watch-a" in spaces, events
    assert set(spaces) == {"watch-a"}, events


def test_the_last_day_of_the_documented_time_range_is_accepted(module_server):
    """The envelope says 'a time from 1678-01-01 to 2261-12-31 (UTC)', and the engine
    takes all of 2261, but anything after midnight of 2261-12-31 was refused."""
    with module_server.client(headers={"X-Memory-Space": "last-day"}) as c:
        r = c.post("/api/v1/episodes/remember", json={"what": "late", "when": "2261-12-31T12:00:00Z"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/memories/remember", json={"content": "late", "timestamp": "2261-12-31T23:59:59.999Z"})
        assert r.status_code == 201, r.text
        r = c.get("/api/v1/memories/recall", params={"from_time": "2261-12-31T06:00:00Z"})
        assert r.status_code == 200, r.text
        check_envelope(c.post("/api/v1/memories/remember", json={"content": "x", "timestamp": "2262-01-01T00:00:00Z"}), 400, "timestamp")


@pytest.mark.parametrize("key", ["durability", "decay"])
def test_space_config_null_setting_names_the_config_field(module_server, key):
    """{"config": {"durability": null}} reached SpaceConfig, whose refusal named
    'durability', a field the request does not have."""
    with module_server.client() as c:
        r = c.post("/api/v1/spaces", json={"id": f"cfg-null-{key}", "config": {key: None}})
        check_envelope(r, 400, f"config.{key}")
        assert f"cfg-null-{key}" not in space_ids(c)
