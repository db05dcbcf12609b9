"""Imports flow one way between the apps (docs/ARCHITECTURE.md): a module imports its own app and
the apps below it, never one above, not even for types or inside a function."""

import ast
from pathlib import Path

import pytest

# Top to bottom: each app may import the apps after it.
LAYERS = ["web", "analytics", "ingestion", "interop", "threads", "tracing", "costs", "tenancy"]
APPS = Path(__file__).resolve().parent.parent / "apps"
MODULES = sorted(p for p in APPS.rglob("*.py") if "migrations" not in p.parts)


def imported_apps(path: Path) -> set[tuple[str, int]]:
    """(app, line) of every `apps.<app>` import in the module, wherever it is in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "apps" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_every_app_is_in_a_layer():
    assert {p.name for p in APPS.iterdir() if p.is_dir() and (p / "apps.py").exists()} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APPS)))
def test_no_module_imports_an_app_above_its_own(path):
    own = path.relative_to(APPS).parts[0]
    upward = [
        f"line {line}: imports apps.{app}"
        for app, line in sorted(imported_apps(path))
        if LAYERS.index(app) < LAYERS.index(own)
    ]
    assert not upward, f"{path.relative_to(APPS)} ({own}) " + "; ".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from apps.ingestion.services import apply\n")
    assert imported_apps(module) == {("ingestion", 2)}
