"""The lifetime of one ``engram serve`` process.

``serve`` opens the database (in a worker thread: opening replays WALs), binds
hypercorn's trio worker, writes the pid file once the socket listens, and waits for
SIGTERM or SIGINT. Then, in order: stop accepting connections and end event streams,
let requests in flight finish (up to ``graceful_timeout_s``), stop the recall
collectors, close the database (which flushes every WAL and releases the directory
lock), remove the pid file, and return so the process exits 0.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..config import Settings
from ..net._trio.node import MembershipConfig, serve_membership
from . import h11_errors, h11_validation, tcp_server
from .gc_policy import GcPauseRecorder, serve_gc_policy
from .http import create_app
from .service import Service

__all__ = ["serve", "run_server", "read_pid_file"]

log = logging.getLogger("engram.server")


def _hypercorn_config(settings: Settings) -> HypercornConfig:
    cfg = HypercornConfig()
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    cfg.bind = [f"{host}:{settings.port}"]
    cfg.graceful_timeout = settings.graceful_timeout_s
    cfg.keep_alive_timeout = 75.0
    # hypercorn closes a keep-alive connection after this many requests (default 1,000),
    # which costs a client a reconnect and, with clients that send the next request
    # before they read "Connection: close", a failed request. Recycling stays (it bounds
    # what one connection can hold on to), 100x less often.
    cfg.keep_alive_max_requests = 100_000
    # Recall by embedding in a query string is ~10 KB; allow long request heads.
    cfg.h11_max_incomplete_size = 256 * 1024
    cfg.backlog = 1024
    cfg.accesslog = logging.getLogger("engram.access") if settings.access_log else None
    cfg.errorlog = logging.getLogger("engram.hypercorn")
    cfg.server_names = []
    cfg.include_server_header = False
    return cfg


def read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("pid"), int) else None


def _write_pid_file(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def membership_config(settings: Settings, http_url: str) -> MembershipConfig:
    """The membership runtime's settings from the server's (``engram serve --cluster ...``)."""
    bind = settings.bind or f"{settings.host}:7946"
    seeds = tuple(seed.strip() for seed in settings.seeds.split(",") if seed.strip())
    return MembershipConfig(
        node_name=settings.node_name or socket.gethostname(),
        bind=bind,
        advertise=settings.advertise,
        seeds=seeds,
        seeds_srv=settings.seeds_srv,
        encrypt=settings.encrypt,
        http_addr=http_url.removeprefix("http://").removeprefix("https://"),
        role="engram",
        preset=settings.cluster_preset,
    )


async def serve(
    settings: Settings,
    *,
    on_ready: Callable[[str, Callable[[], None]], None] | None = None,
    handle_signals: bool = True,
    write_pid: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or the ``stop`` callable given to ``on_ready``, which
    any thread may call). Raises SpaceLockedError if the data directory is in use."""
    import engram

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = await trio.to_thread.run_sync(lambda: engram.open(data_dir))
    pid_path = settings.pid_path
    gc_recorder: GcPauseRecorder | None = None
    try:
        async with trio.open_nursery() as nursery:
            svc = Service(db, settings, nursery)
            app = create_app(svc)
            stop = trio.Event()

            async def serve_signals(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    task_status.started()
                    async for signum in signals:
                        log.info("received %s: shutting down", signal.Signals(signum).name)
                        stop.set()
                        return

            async def shutdown_trigger() -> None:
                await stop.wait()
                # Before hypercorn waits on requests in flight: end SSE streams (they
                # never finish by themselves) and report unhealthy to load balancers.
                svc.shutting_down = True
                svc.hub.close()

            if handle_signals:
                await nursery.start(serve_signals)
            # The engine's heap out of the cyclic collector's way (see gc_policy.py).
            await nursery.start(serve_gc_policy)
            gc_pause_children = {g: svc.metrics.gc_pause.labels(str(g)) for g in (0, 1, 2)}
            gc_recorder = GcPauseRecorder(lambda generation, seconds: gc_pause_children[generation].observe(seconds))
            gc.callbacks.append(gc_recorder)
            if svc.consolidation is not None:
                nursery.start_soon(svc.consolidation.serve, name="serve_consolidation")
            token = trio.lowlevel.current_trio_token()

            def stop_from_any_thread() -> None:
                try:
                    token.run_sync_soon(stop.set)
                except trio.RunFinishedError:
                    pass
            tcp_server.install(send_timeout_s=settings.send_timeout_s)  # closes cannot race sends; sends have a deadline
            h11_validation.install()  # long recall URLs checked without two regex passes (see h11_validation.py)
            h11_errors.install()  # requests h11 refuses get the JSON error envelope, not an empty body
            async with trio.open_nursery() as http_nursery:
                binds = await http_nursery.start(lambda task_status: hypercorn_serve(
                    app, _hypercorn_config(settings), shutdown_trigger=shutdown_trigger, task_status=task_status))
                url = binds[0] if binds else f"http://{settings.host}:{settings.port}"
                tail = url.rsplit(":", 1)[-1]
                port = int(tail) if tail.isdigit() else settings.port
                if settings.cluster:
                    svc.membership = await nursery.start(serve_membership, membership_config(settings, url))
                if write_pid:
                    _write_pid_file(pid_path, {"pid": os.getpid(), "url": url, "port": port, "host": settings.host,
                                               "data_dir": str(data_dir.resolve()), "auth": settings.auth_enabled})
                if on_ready is not None:
                    on_ready(url, stop_from_any_thread)
            # hypercorn returned: no connection is open and no request in flight. The
            # recall collectors (and the signal task) are all that is left.
            if svc.membership is not None:
                with trio.move_on_after(settings.graceful_timeout_s):
                    await svc.membership.leave()  # tell the cluster we left, not failed
            svc.close_batchers()
            nursery.cancel_scope.cancel()
    finally:
        if gc_recorder in gc.callbacks:
            gc.callbacks.remove(gc_recorder)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(db.close)
        try:
            doc = read_pid_file(pid_path)
            if doc is not None and doc.get("pid") == os.getpid():
                pid_path.unlink()
        except OSError:
            pass


def _fix_malloc_mmap_threshold() -> None:
    """Keep large arrays in their own mappings, returned to the OS when freed.

    glibc raises its mmap threshold each time a large mapped block is freed (up to
    32 MiB), after which the matrix copies of growth and compaction come from the
    heap and fragment it: a 20-minute soak grew from 468 to 944 MB with a flat data
    set, and levelled off near 500 MB with the threshold pinned (MALLOC_MMAP_THRESHOLD_).
    Pinning it with mallopt does the same without an environment variable.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_MMAP_THRESHOLD = -3  # noqa: N806 - glibc's name
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to pin
        pass


def run_server(settings: Settings) -> int:
    """Blocking entry point for ``engram serve``; returns the exit status."""
    import engram

    _fix_malloc_mmap_threshold()

    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    def ready(url: str, _stop: Callable[[], None]) -> None:
        auth = "API keys required" if settings.auth_enabled else "API keys off (loopback)"
        print(f"engram {getattr(engram, '__version__', '')} listening on {url} (data: {Path(settings.data_dir).resolve()}; {auth})",
              flush=True)

    try:
        trio.run(lambda: serve(settings, on_ready=ready))
    except engram.SpaceLockedError as exc:
        # Not the engine's message, which suggests engram.open() on another directory:
        # someone running 'engram serve' needs the CLI's ways out.
        data = Path(settings.data_dir).resolve()
        pid_doc = read_pid_file(settings.pid_path)
        if pid_doc:
            who = f"an engram server (pid {pid_doc['pid']}) already serves it"
        else:
            who = f"another process (pid {exc.holder}) has it open"
        print(f"error: data directory {data} is in use: {who}; stop that first ('engram stop' stops a server), "
              "or serve another directory, e.g. engram serve --data ./engram-data-2", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print("engram stopped cleanly", flush=True)
    return 0
