"""The import rules of DESIGN.md hold: data flows down the layers, never up.

How: parse every module with ``ast`` and collect its imports (including ones inside
functions). Nothing under ``engram/net/`` except ``engram/net/_trio/`` may import trio,
socket, time or asyncio (protocol cores are sans-IO: time is passed in as ``now_ms``);
nothing in the kernels, storage or engine imports ``engram.net``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "engram"
FORBIDDEN_IN_CORES = {"trio", "socket", "time", "asyncio", "selectors"}
ENGINE_DIRS = ("_core", "storage", "memory", "engine")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_protocol_cores_do_no_io() -> None:
    offenders = []
    for path in sorted((ROOT / "net").rglob("*.py")):
        if "_trio" in path.relative_to(ROOT / "net").parts:
            continue
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN_IN_CORES:
                offenders.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not offenders, offenders


def test_engine_does_not_import_net() -> None:
    offenders = []
    for directory in ENGINE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")) if (ROOT / directory).exists() else []:
            for name in _imports(path):
                if name == "engram.net" or name.startswith("engram.net."):
                    offenders.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not offenders, offenders


def test_the_scan_sees_the_cores() -> None:
    # Guard against a vacuous pass: the swim core must be found and parsed.
    assert "engram.net.swim.config" in _imports(ROOT / "net" / "swim" / "core.py")
