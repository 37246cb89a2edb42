"""A small synchronous HTTP client for the CLI, and a local server for when none runs.

CLI commands speak HTTP to a running ``engram serve`` (found through the pid file in
the data directory, ``--url`` or ENGRAM_URL). When no server answers and the data
directory is free, ``local_server`` serves it in a background thread on a free
loopback port for the length of one command, so every command has one code path and
the same validation whether or not a server runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from ..config import Settings

__all__ = ["ApiClient", "ClientError", "connect", "server_url"]


class ClientError(Exception):
    """A request failed; ``status`` is 0 when no server answered."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @classmethod
    def no_answer(cls, url: str, exc: BaseException) -> ClientError:
        """No server answered at ``url`` (``exc``: the transport's error). The CLI's bench,
        which speaks HTTP without this client, words the same failure with this message."""
        return cls(0, f"no answer from {url}: {exc}; is an engram server running there? "
                      "('engram serve' starts one; --url or ENGRAM_URL names another)")


class ApiClient:
    def __init__(self, base_url: str, *, api_key: str = "", space: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"User-Agent": "engram-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if space:
            headers["X-Memory-Space"] = space
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ClientError.no_answer(self.base_url, exc) from None
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if 300 <= r.status_code < 400:
            # Not followed: a redirect would re-send the body and the API key to wherever
            # Location points, and a 3xx is no answer to the request either.
            where = r.headers.get("location", "(no Location header)")
            raise ClientError(r.status_code, f"HTTP {r.status_code}: the server redirected {method} {path} to {where}; "
                              "redirects are not followed: give --url (or ENGRAM_URL) the server's own address, "
                              "e.g. http://127.0.0.1:7432", body)
        if not 200 <= r.status_code < 300:
            msg = body["error"]["message"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else str(body)[:500]
            hint = ""
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                # The message says what was wrong; 'allowed' says what would be right,
                # which a user needs as much as the example.
                if body["error"].get("allowed"):
                    hint = f"; allowed: {body['error']['allowed']}"
                if body["error"].get("cognitive_guidance"):
                    hint += f" ({body['error']['cognitive_guidance']})"
            raise ClientError(r.status_code, f"HTTP {r.status_code}: {msg}{hint}", body)
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def server_url(settings: Settings) -> str | None:
    """The running server's URL: --url/ENGRAM_URL, else the pid file's, else None."""
    from .server import read_pid_file

    if settings.url:
        return settings.url.rstrip("/")
    doc = read_pid_file(settings.pid_path)
    if doc is not None and isinstance(doc.get("url"), str):
        return doc["url"].rstrip("/")
    return None


@contextlib.contextmanager
def local_server(settings: Settings) -> Iterator[str]:
    """Serve ``settings.data_dir`` on a free loopback port in a background thread."""
    import trio

    from .server import serve

    local = dataclasses.replace(settings, host="127.0.0.1", port=0, auth="off", access_log=False)
    ready = threading.Event()
    box: dict[str, Any] = {}

    def on_ready(url: str, stop: Callable[[], None]) -> None:
        box["url"] = url
        box["stop"] = stop
        ready.set()

    def main() -> None:
        try:
            trio.run(lambda: serve(local, on_ready=on_ready, handle_signals=False, write_pid=False))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, name="engram-local-server", daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        raise box["error"]
    try:
        yield box["url"]
    finally:
        box["stop"]()
        thread.join()
        if "error" in box:
            raise box["error"]


@contextlib.contextmanager
def connect(settings: Settings, *, space: str | None = None, local_ok: bool = True) -> Iterator[ApiClient]:
    """A client for the running server; without one, for a local server over the data dir."""
    url = server_url(settings)
    if url is not None:
        client = ApiClient(url, api_key=settings.api_key, space=space)
        try:
            client.get("/health/alive", timeout=3.0)
        except ClientError as exc:
            client.close()
            if exc.status != 0 or settings.url or not local_ok:
                raise
            url = None  # stale pid file: the server is gone
        else:
            try:
                yield client
            finally:
                client.close()
            return
    if not local_ok:
        raise ClientError(0, f"no engram server is running for {Path(settings.data_dir).resolve()}; start one with 'engram serve'")
    with local_server(settings) as local_url:
        client = ApiClient(local_url, space=space)
        try:
            yield client
        finally:
            client.close()
