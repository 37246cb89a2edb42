"""Integer query parameters take ASCII digits with an optional sign, nothing else.

int() also took "1_0", surrounding spaces and other scripts' digits ("１０", "٣").
A real server is asked for each on the list, recall and consolidation routes and must
answer 400 in the envelope naming the parameter; plain integers still work.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path, key", [
    ("/api/v1/memories", "limit"),
    ("/api/v1/memories", "offset"),
    ("/api/v1/memories/recall?query=cell", "max_results"),
    ("/api/v1/consolidations", "max_episodes"),
])
@pytest.mark.parametrize("raw", ["1_0", "１０", "٣", " 3", "3 ", "0x1", "1e1", "+-1"])
def test_non_ascii_integer_is_refused(start_server_once, path, key, raw):
    c = start_server_once
    r = c.get(path, params={key: raw})
    assert r.status_code == 400, (raw, r.text)
    error = r.json()["error"]
    assert error["field"] == key
    assert "ASCII" in error["allowed"]


@pytest.mark.parametrize("path, key, raw", [("/api/v1/memories", "limit", "10"), ("/api/v1/memories", "offset", "+0"),
                                            ("/api/v1/consolidations", "max_episodes", "500")])
def test_plain_integer_is_taken(start_server_once, path, key, raw):
    assert start_server_once.get(path, params={key: raw}).status_code == 200


@pytest.fixture(scope="module")
def start_server_once(tmp_path_factory):
    from conftest import ServerProcess

    server = ServerProcess(tmp_path_factory.mktemp("param-int") / "data").start()
    try:
        with server.client() as c:
            yield c
    finally:
        assert server.stop() == 0, server.log()
