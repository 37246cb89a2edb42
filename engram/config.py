"""Settings for the server and the CLI, and where each value came from.

Precedence, highest first: command-line flags, ``ENGRAM_*`` environment variables, a
TOML file given with ``--config`` (or ``ENGRAM_CONFIG``), then the defaults below. The
table in ``SETTINGS_TABLE`` (printed by ``engram config show``) is the one place where
every setting is documented: name, environment variable, default, and what it changes.

This module reads files and the environment only when ``load_settings`` is called; it
holds no global state.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Settings", "SettingsError", "load_settings", "SETTINGS_TABLE", "is_loopback"]

AUTH_MODES = ("auto", "required", "off")
DURABILITY_MODES = ("sync", "async")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A setting has a value that is not allowed; the message names it and its source.

    ``setting``: the setting's name ("config" for the config file itself; None when the
    error is about no one setting, such as an unknown name given as a flag). ``source``:
    where the value came from ("flag", "env ENGRAM_PORT", "file engram.toml"), when known.
    ``problem``: the message without them. The message reads
    "<setting> (from <source>): <problem>", leaving out what is None."""

    def __init__(self, setting: str | None, problem: str, *, source: str | None = None) -> None:
        self.setting = setting
        self.problem = problem
        self.source = source
        if setting is None:
            message = problem
        elif source is None:
            message = f"{setting}: {problem}"
        else:
            message = f"{setting} (from {source}): {problem}"
        super().__init__(message)


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob of ``engram serve`` and of the CLI client. Units go last in names."""

    data_dir: Path = field(
        default=Path("./engram-data"),
        metadata=_doc("Directory holding one sub-directory per memory space, the pid file and keys.sqlite."),
    )
    host: str = field(
        default="127.0.0.1",
        metadata=_doc("Address the HTTP server binds. A non-loopback address turns API keys on (see auth)."),
    )
    port: int = field(default=7432, metadata=_doc("TCP port of the HTTP API; 0 picks a free port."))
    auth: str = field(
        default="auto",
        metadata=_doc(
            "API keys: 'auto' requires them on non-loopback addresses only, 'required' always, "
            "'off' never (the --insecure flag)."
        ),
    )
    body_bytes_max: int = field(
        default=1_048_576,
        metadata=_doc("Largest JSON request body; bigger bodies get 413 before they are read in full."),
    )
    bulk_body_bytes_max: int = field(
        default=128 * 1_048_576,
        metadata=_doc("Largest body of POST /api/v1/memories/bulk (JSON lines or msgpack)."),
    )
    bulk_items_max: int = field(
        default=100_000, metadata=_doc("Most memories in one bulk request (one WAL batch, one fsync).")
    )
    engine_threads_max: int = field(
        default=16,
        metadata=_doc(
            "Worker threads for blocking engine calls (fsync, scans). More lets more writers share "
            "one group-commit fsync; fewer bounds memory under overload."
        ),
    )
    recall_batch_count_max: int = field(
        default=64,
        metadata=_doc(
            "Most concurrent recalls on one space answered by one shared matrix scan. Larger batches "
            "raise throughput and the latency of each batch."
        ),
    )
    remember_batch_count_max: int = field(
        default=256,
        metadata=_doc("Most concurrent remembers on one space written as one WAL batch (one thread hop, one fsync)."),
    )
    recall_queue_count_max: int = field(
        default=4096,
        metadata=_doc("Recalls waiting for a scan on one space before new ones get 503 with Retry-After."),
    )
    key_rate_per_s: float = field(
        default=1000.0,
        metadata=_doc("Default request rate allowed to a new API key (token bucket, burst of one second)."),
    )
    key_cache_ttl_s: float = field(
        default=10.0,
        metadata=_doc("How long a verified API key is trusted without re-reading keys.sqlite; a revoked key works this long."),
    )
    durability: str = field(
        default="sync",
        metadata=_doc("Durability of spaces this server creates: 'sync' (fsync before 201) or 'async'."),
    )
    graceful_timeout_s: float = field(
        default=10.0,
        metadata=_doc("On SIGTERM/SIGINT, how long requests in flight may take before they are cut."),
    )
    body_timeout_s: float = field(
        default=60.0,
        metadata=_doc(
            "How long a request body may take to arrive (plus 1 s per MiB the request may send) "
            "before the answer is 408 and the connection closes: a client that sends its headers "
            "and then holds the body back would otherwise keep a connection (a file descriptor) forever."
        ),
    )
    send_timeout_s: float = field(
        default=60.0,
        metadata=_doc(
            "How long one send to a client may block (the client reads nothing) before the "
            "connection closes: a client that never reads its answers would otherwise pin them "
            "in memory, and its connection, for as long as it likes. Event streams too."
        ),
    )
    cluster: bool = field(default=False, metadata=_doc("Join a cluster: run SWIM membership (memberlist's wire protocol)."))
    node_name: str = field(default="", metadata=_doc("Cluster node name; empty: the host name."))
    bind: str = field(default="", metadata=_doc("Gossip address HOST[:PORT] (UDP and TCP); empty: HOST:7946."))
    advertise: str = field(default="", metadata=_doc("Gossip address peers should use, if not the bind address."))
    seeds: str = field(default="", metadata=_doc("Comma-separated host:port of members to join (names resolved, retried)."))
    seeds_srv: str = field(default="", metadata=_doc("DNS SRV name listing more seeds, e.g. _engram._udp.example.com."))
    encrypt: str = field(default="", metadata=_doc("Gossip encryption key, base64, as `serf keygen` prints."))
    cluster_preset: str = field(default="lan", metadata=_doc("Membership timings: lan (memberlist's), local, wan, test_min."))
    embedder: str = field(
        default="none",
        metadata=_doc("Server-side text embeddings for memories and queries sent without one: 'none' or 'minilm' "
                      "(needs pip install \"engram[embed]\"; spaces it creates get 384 dimensions)."),
    )
    consolidation_interval_s: float = field(
        default=300.0,
        metadata=_doc("Seconds between scheduled consolidation runs of each space with new writes (the soak uses 60)."),
    )
    consolidation_max_episodes: int = field(
        default=5000, metadata=_doc("Newest episodes (by time, then id) one consolidation run clusters.")
    )
    log_level: str = field(default="info", metadata=_doc("Server log level: debug, info, warning, error."))
    access_log: bool = field(
        default=False, metadata=_doc("Log every request (costs throughput; off by default).")
    )
    url: str = field(
        default="",
        metadata=_doc("Where CLI commands send requests; empty means http://HOST:PORT (or the pid file's address)."),
    )
    api_key: str = field(
        default="", metadata=_doc("API key the CLI sends as 'Authorization: Bearer ...' (ENGRAM_API_KEY).")
    )

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise SettingsError("auth", f"{self.auth!r} is not allowed; allowed: {', '.join(AUTH_MODES)}; example: auth = \"auto\"")
        if self.durability not in DURABILITY_MODES:
            raise SettingsError(
                "durability", f"{self.durability!r} is not allowed; allowed: sync, async; example: durability = \"sync\""
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError("port", f"{self.port} is out of range; allowed: 0..65535; example: port = 7432")
        for name in ("body_bytes_max", "bulk_body_bytes_max", "bulk_items_max", "engine_threads_max",
                     "recall_batch_count_max", "remember_batch_count_max", "recall_queue_count_max"):
            if getattr(self, name) < 1:
                raise SettingsError(name, f"must be at least 1; example: {name} = {getattr(Settings, name, 1)}")
        if self.embedder not in ("none", "minilm"):
            raise SettingsError("embedder", f"{self.embedder!r} is not allowed; allowed: none, minilm; example: embedder = \"minilm\"")
        for name, (lo, lo_open, hi) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            # Written so that NaN fails every comparison and is refused with infinity.
            inside = value > lo if lo_open else value >= lo
            if not (inside and value <= hi):
                low = f"> {lo:g}" if lo_open else f">= {lo:g}"
                raise SettingsError(name, f"{value!r} is not allowed; allowed: a finite number {low} and <= {hi:g}; "
                                          f"example: {name} = {FIELDS[name].default:g}")
        if self.log_level.lower() not in LOG_LEVELS:  # the server would quietly log at info instead
            raise SettingsError("log_level", f"{self.log_level!r} is not allowed; allowed: {', '.join(LOG_LEVELS)}; "
                                             "example: log_level = \"warning\"")
        if self.consolidation_max_episodes < 1:
            raise SettingsError("consolidation_max_episodes", "must be at least 1; example: consolidation_max_episodes = 5000")

    # Derived values -------------------------------------------------------------------

    @property
    def auth_enabled(self) -> bool:
        """Whether requests must carry an API key, after resolving 'auto' against the host."""
        if self.auth == "required":
            return True
        if self.auth == "off":
            return False
        return not is_loopback(self.host)

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "engram.pid"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.sqlite"

    def client_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @classmethod
    def test_min(cls, data_dir: Path) -> "Settings":
        """Tiny limits that reach edge cases quickly in tests."""
        return cls(data_dir=data_dir, port=0, body_bytes_max=65_536, bulk_body_bytes_max=1_048_576,
                   bulk_items_max=1000, engine_threads_max=4, recall_batch_count_max=4,
                   recall_queue_count_max=64, graceful_timeout_s=3.0)


# The float settings' ranges: (lowest, whether the lowest itself is excluded, highest).
# Timeouts and intervals are seconds; a day or a month is far past any sensible value,
# and NaN or infinity would make a sleep or a deadline never end (or end at once).
_FLOAT_RANGES: dict[str, tuple[float, bool, float]] = {
    "key_rate_per_s": (0.0, True, 1e9),
    "key_cache_ttl_s": (0.0, False, 86_400.0),
    "graceful_timeout_s": (0.0, False, 86_400.0),
    "body_timeout_s": (0.0, True, 86_400.0),
    "send_timeout_s": (0.0, True, 86_400.0),
    "consolidation_interval_s": (0.0, True, 2_592_000.0),
}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
assert set(_FLOAT_RANGES) == {name for name, f in FIELDS.items() if isinstance(f.default, float)}
ENV_PREFIX = "ENGRAM_"


def env_name(name: str) -> str:
    # ENGRAM_DATA_DIR is the name the original Engram uses; keep the rule uniform.
    return ENV_PREFIX + name.upper()


def _coerce(name: str, raw: Any, source: str) -> Any:
    f = FIELDS[name]
    default = f.default
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, Path):
            return Path(str(raw)).expanduser()
        if isinstance(default, int):
            # int() would truncate: a TOML 'port = 7432.9' must not quietly become 7432.
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise SettingsError(name, f"{raw!r} is not a valid {kind}; example: {name} = {default!r}", source=source) from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Merge flags > ENGRAM_* env > TOML file > defaults.

    Returns the settings and, for each field, the source its value came from
    ("flag", "env ENGRAM_PORT", "file engram.toml", "default").

    Raises:
        SettingsError: an unknown key in the file, or a value of the wrong type or range.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in FIELDS}

    path = config_path or env.get(ENV_PREFIX + "CONFIG") or None
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError("config", f"file {path} does not exist; example: --config ./engram.toml") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError("config", f"{path} is not valid TOML ({exc})") from None
        except OSError as exc:
            raise SettingsError("config", f"cannot read {path} ({exc.strerror or exc}); example: --config ./engram.toml") from None
        # Accept a flat file or one with an [engram] / [server] table.
        table: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, dict) and key in ("engram", "server", "client"):
                table.update(value)
            else:
                table[key] = value
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in FIELDS:
                raise SettingsError(
                    "config", f"unknown setting {key!r} in {path}; allowed: {', '.join(sorted(FIELDS))}"
                )
            coerced = _coerce(name, value, f"file {path}")
            if isinstance(coerced, Path) and not coerced.is_absolute():
                # A path written in the file means the same wherever engram is started:
                # it is relative to the file, as in most servers' config files.
                coerced = Path(path).parent / coerced
            values[name] = coerced
            sources[name] = f"file {path}"

    for name in FIELDS:
        var = env_name(name)
        if var in env and env[var] != "":
            values[name] = _coerce(name, env[var], f"env {var}")
            sources[name] = f"env {var}"

    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FIELDS:
            raise SettingsError(None, f"unknown setting {name!r}")
        values[name] = _coerce(name, value, "flag")
        sources[name] = "flag"

    try:
        return Settings(**values), sources
    except SettingsError as exc:
        # Settings' own checks name the setting; say where its value came from, as the
        # type checks above do (a bad ENGRAM_* variable is easy to forget about).
        source = None if exc.setting is None else sources.get(exc.setting, "default")
        if exc.source is None and source not in (None, "default"):
            raise SettingsError(exc.setting, exc.problem, source=source) from None
        raise


def settings_table() -> list[tuple[str, str, str, str]]:
    """(name, environment variable, default, effect) for every setting."""
    rows = []
    for f in dataclasses.fields(Settings):
        rows.append((f.name, env_name(f.name), repr(f.default if not isinstance(f.default, Path) else str(f.default)), f.metadata.get("doc", "")))
    return rows


SETTINGS_TABLE = settings_table()
