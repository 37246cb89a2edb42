"""Helpers for tests that run real processes: Engram membership nodes and Serf agents.

Each helper starts a process in its own process group, remembers its pid, and ``close()``
kills exactly the processes it started (SIGKILL by pid), so a failing test never leaves
agents behind and never touches anyone else's processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Cluster", "NetworkNamespace", "wait_for"]


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float:
    """Poll until ``predicate()`` is true; returns the seconds it took. Raises TimeoutError."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class Cluster:
    """A set of processes started by one test."""

    def __init__(self, namespace: NetworkNamespace | None = None) -> None:
        # Engram nodes start inside ``namespace`` when one is given (Serf agents do not).
        self.namespace = namespace
        self.directory = tempfile.mkdtemp(prefix="engram-cluster-")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.rpc: dict[str, str] = {}

    # --- Engram nodes -----------------------------------------------------------------

    def start_engram(self, name: str, bind: str, seeds: list[str] = (), *, encrypt: str = "",  # type: ignore[assignment]
                     http_addr: str = "", preset: str = "lan", extra: tuple[str, ...] = ()) -> None:
        command = [sys.executable, "-m", "engram.net._trio.node", "--node-name", name, "--bind", bind,
                   "--status-file", self.status_path(name), "--preset", preset, *extra]
        if self.namespace is not None:
            command = self.namespace.command(command)
        if seeds:
            command += ["--seeds", ",".join(seeds)]
        if encrypt:
            command += ["--encrypt", encrypt]
        if http_addr:
            command += ["--http-addr", http_addr]
        log = open(os.path.join(self.directory, f"{name}.log"), "wb")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def status_path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.json")

    def engram_status(self, name: str) -> dict[str, Any]:
        """The whole status file of node ``name`` (members, health, metrics); {} until written."""
        try:
            with open(self.status_path(name)) as f:
                return json.load(f)  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def engram_view(self, name: str) -> dict[str, dict[str, Any]]:
        """Member id -> member dict as node ``name`` sees it ({} until it wrote a status)."""
        try:
            with open(self.status_path(name)) as f:
                return {m["id"]: m for m in json.load(f)["members"]}
        except (OSError, ValueError):
            return {}

    # --- Serf agents ------------------------------------------------------------------

    def start_serf(self, name: str, bind: str, rpc: str, *, encrypt: str = "", tags: dict[str, str] | None = None,
                   join: str = "") -> None:
        command = [serf_binary(), "agent", f"-node={name}", f"-bind={bind}", f"-rpc-addr={rpc}", "-log-level=debug"]
        if encrypt:
            command.append(f"-encrypt={encrypt}")
        for key, value in (tags or {}).items():
            command.append(f"-tag={key}={value}")
        if join:
            command.append(f"-join={join}")
        log = open(os.path.join(self.directory, f"{name}.log"), "wb")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.rpc[name] = rpc

    def serf_members(self, name: str) -> dict[str, dict[str, Any]]:
        """Member name -> `serf members -format=json` entry, as agent ``name`` sees it."""
        out = subprocess.run([serf_binary(), "members", f"-rpc-addr={self.rpc[name]}", "-format=json"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return {}
        return {m["name"]: m for m in json.loads(out.stdout)["members"]}

    def serf_join(self, name: str, address: str) -> str:
        out = subprocess.run([serf_binary(), "join", f"-rpc-addr={self.rpc[name]}", address],
                             capture_output=True, text=True, timeout=15)
        return out.stdout + out.stderr

    # --- lifetime ---------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one process we started (a crash: no goodbye)."""
        process = self.processes[name]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def terminate(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=15)

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.directory, f"{name}.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        for name in list(self.processes):
            try:
                self.kill(name)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.directory, ignore_errors=True)


def serf_binary() -> str:
    path = shutil.which("serf")
    if path is None:
        raise FileNotFoundError("serf is not installed (apt-get install serf)")
    return path


class NetworkNamespace:
    """A Linux network namespace made for one test (needs root and iproute2), with nft
    rules to cut links inside it. ``close()`` deletes it, and with it every rule; processes
    still inside must be killed first (Cluster.close does).

    Raises RuntimeError from ``create`` when it cannot be made (not root, no ``ip``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = False

    @classmethod
    def available(cls) -> str:
        """Empty when namespaces and nft can be used here, else the reason why not."""
        if os.geteuid() != 0:
            return "not running as root"
        for tool in ("ip", "nft"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (apt-get install iproute2 nftables)"
        return ""

    def create(self) -> NetworkNamespace:
        self._run(["ip", "netns", "add", self.name], inside=False)
        self.created = True
        self._run(["ip", "link", "set", "lo", "up"])
        return self

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def _run(self, argv: list[str], *, inside: bool = True, stdin: str | None = None) -> None:
        command = self.command(argv) if inside else argv
        out = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {out.stderr.strip()}")

    def cut(self, side_a: list[str], side_b: list[str]) -> None:
        """Drop every IPv4 packet (UDP and TCP) between the two address sets, both ways."""
        a = ", ".join(side_a)
        b = ", ".join(side_b)
        rules = (
            "table inet engram_partition {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    ip saddr {{ {a} }} ip daddr {{ {b} }} drop\n"
            f"    ip saddr {{ {b} }} ip daddr {{ {a} }} drop\n"
            "  }\n"
            "}\n"
        )
        self._run(["nft", "-f", "-"], stdin=rules)

    def heal(self) -> None:
        """Remove the partition rules."""
        self._run(["nft", "delete", "table", "inet", "engram_partition"])

    def close(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            self.created = False
