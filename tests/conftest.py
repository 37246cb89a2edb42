"""Shared fixtures.

Server fixtures (used by tests/test_http_*.py, test_cli_*.py, test_auth*.py): a real
``engram serve`` child process on a free loopback port, talked to over HTTP. The
process runs from this checkout (PYTHONPATH), its data in a temporary directory; the
fixture waits for the pid file, and stops the server with SIGTERM afterwards,
checking that it exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engram_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key in list(env):
        if key.startswith("ENGRAM_") and key not in ("ENGRAM_PURE",):
            del env[key]
    env.update(extra)
    return env


def run_cli(*args: str, data: Path | None = None, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m engram ARGS`` from this checkout; returns the completed process."""
    cmd = [sys.executable, "-m", "engram"]
    if data is not None:
        cmd += ["--data", str(data)]
    cmd += list(args)
    return subprocess.run(cmd, env=env or engram_env(), capture_output=True, text=True, timeout=timeout, input=input)


class ServerProcess:
    """A running ``engram serve`` child; ``url`` is its base URL."""

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.env = env or engram_env()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout_s: float = 60.0) -> "ServerProcess":
        import httpx

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engram", "serve", "--data", str(self.data_dir), "--port", str(self.port),
                 *self.extra_args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health/alive", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self, **kw: Any) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, timeout=30.0, **kw)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``start_server(*extra_args, data_dir=None)`` -> a started ServerProcess.
    Every server still running at the end is stopped and must exit 0."""
    started: list[ServerProcess] = []

    def factory(*extra_args: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or (tmp_path / "data"), *extra_args, env=env)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            code = server.stop()
            assert code == 0, f"server exited {code}:\n{server.log()}"


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server shared by a test module (for tests that do not need a fresh directory)."""
    server = ServerProcess(tmp_path_factory.mktemp("engram") / "data").start()
    yield server
    code = server.stop()
    assert code == 0, f"server exited {code}:\n{server.log()}"


def vec(seed: int, dim: int = 768) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim).astype(np.float32)
    return [float(x) for x in v / np.linalg.norm(v)]


def pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2)[:2000]


def run_with_service(settings: Any, body: Any, db: Any = None) -> None:
    """Run ``await body(svc)`` against an in-process ``Service`` over ``settings.data_dir``
    (or the open ``db`` given), inside a trio nursery, then close it all. For unit tests of
    the server's logic without a process or a socket."""
    import trio

    import engram
    from engram.api.service import Service

    own = db is None
    if own:
        db = engram.open(settings.data_dir)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            svc = Service(db, settings, nursery)
            await body(svc)
            svc.close_batchers()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        if own:
            db.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh loopback connection and read until the server closes it
    (or ``timeout``): for requests no HTTP client library would send."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all: read the answer
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
