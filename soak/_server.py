"""One real ``engram serve`` process for the soak: start, SIGKILL, restart, sample.

The server runs as a child process (``python -m engram serve``) on a port chosen once
and reused across restarts, over one data directory. ``kill`` sends SIGKILL, never
SIGTERM: the point is to cut the server wherever it is, fsync in flight or not.
Sampling reads /proc through psutil (RSS, open fds, threads) and the data directory
(WAL bytes, total bytes); it never asks the server, so a sample costs the server nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessSample:
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float
    wal_bytes: int
    data_bytes: int


def _dir_bytes(root: Path) -> tuple[int, int]:
    """(bytes in WAL segments, bytes in all files) under ``root``."""
    wal = 0
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        in_wal = os.path.basename(dirpath) == "wal"
        for name in filenames:
            try:
                size = os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # a segment removed by a checkpoint while we walked
            total += size
            if in_wal:
                wal += size
    return wal, total


class ServerProcess:
    """The server under test. ``lifetime`` counts starts (1 for the first process)."""

    def __init__(self, data_dir: Path, log_path: Path, *, port: int | None = None, durability: str = "sync") -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.durability = durability
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.lifetime = 0
        self.started_monotonic_s = 0.0

    def start(self, timeout_s: float = 120.0) -> float:
        """Start and wait until /health answers 200; returns the seconds that took.

        Raises RuntimeError if the process exits or does not answer in ``timeout_s``.
        """
        assert self.proc is None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "engram", "serve", "--data", str(self.data_dir), "--host", "127.0.0.1",
               "--port", str(self.port), "--durability", self.durability, "--log-level", "warning"]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.ps = psutil.Process(self.proc.pid)
        self.lifetime += 1
        deadline = t0 + timeout_s
        with httpx.Client(timeout=2.0) as c:
            while True:
                if self.proc.poll() is not None:
                    tail = self.log_path.read_bytes()[-2000:].decode(errors="replace")
                    code = self.proc.returncode
                    self.proc = None
                    self.ps = None
                    raise RuntimeError(f"engram serve exited with status {code} while starting:\n{tail}")
                try:
                    if c.get(self.url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"engram serve did not answer /health within {timeout_s:g}s")
                time.sleep(0.05)
        self.started_monotonic_s = time.monotonic()
        return self.started_monotonic_s - t0

    def kill(self) -> None:
        """SIGKILL and reap. Safe to call when already dead."""
        if self.proc is None:
            return
        try:
            self.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        self.ps = None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (graceful) and wait; returns the exit status (SIGKILL after the timeout)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        self.ps = None
        return int(code)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample(self) -> ProcessSample | None:
        """Process and disk figures now; None if the process is not running."""
        ps = self.ps
        if ps is None:
            return None
        try:
            with ps.oneshot():
                rss = ps.memory_info().rss
                fds = ps.num_fds()
                threads = ps.num_threads()
                cpu = ps.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        wal, total = _dir_bytes(self.data_dir)
        return ProcessSample(rss_mb=rss / 2**20, fds=fds, threads=threads, cpu_s=cpu.user + cpu.system,
                             wal_bytes=wal, data_bytes=total)
