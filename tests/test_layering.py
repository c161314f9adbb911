"""House rules that code review would otherwise have to catch."""

from __future__ import annotations

import ast
from pathlib import Path

import recordbase

PACKAGE = Path(recordbase.__file__).parent
FORBIDDEN_IN_CORE = (
    "recordbase.web",
    "recordbase.stores",
    "starlette",
    "sqlite3",
    "psycopg",
    "uvicorn",
    "redis",
    "httpx",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_core_does_no_io() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / "core").rglob("*.py")
        for name in _imports(path)
        if name.startswith(FORBIDDEN_IN_CORE)
    ]
    assert offenders == []


def test_faces_never_touch_the_store() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / "web").rglob("*.py")
        for name in _imports(path)
        if name.startswith(("recordbase.stores", "sqlite3", "psycopg"))
    ]
    assert offenders == []


def test_only_config_reads_the_environment() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "os.environ" in path.read_text() and path.name not in ("config.py", "cli.py")
    ]
    assert offenders == []


def test_every_module_has_a_docstring() -> None:
    missing = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert missing == []
