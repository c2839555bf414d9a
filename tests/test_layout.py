"""Imports run one way (DESIGN.md, Layout): the client ships alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for module in (ROOT / package).rglob("*.py"):
        found |= _imported_packages_of(module)
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("client", {"simulator", "contracts"}),
    ("simulator", {"client"}),
])
def test_imports_run_one_way(package: str, forbidden: set[str]) -> None:
    assert not _imported_packages(package) & forbidden


def test_httpx_stays_behind_one_module_of_the_client() -> None:
    users = [module.name for module in (ROOT / "client").glob("*.py")
             if "httpx" in _imported_packages_of(module)]
    assert users == ["_transport.py"]


def test_everything_imports_through_the_partnerkit_namespace() -> None:
    """A bare `import client` works in a checkout but not when installed."""
    bare = {"client", "simulator", "contracts"}
    offenders = [
        f"{module.relative_to(ROOT)}: {name}"
        for folder in ("client", "simulator", "contracts", "tests", "bench", "scripts")
        for module in (ROOT / folder).rglob("*.py")
        for name in _imported_names_of(module)
        if name.split(".")[0] in bare
    ]
    assert offenders == []


def test_the_namespace_links_to_the_root_folders() -> None:
    for package in ("client", "simulator", "contracts"):
        assert (ROOT / "partnerkit" / package).resolve() == ROOT / package


def _imported_names_of(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _imported_packages_of(module: Path) -> set[str]:
    """Which of partnerkit's packages (or which outside packages) a module imports."""
    found = set()
    for name in _imported_names_of(module):
        parts = name.split(".")
        found.add(parts[1] if parts[0] == "partnerkit" and len(parts) > 1 else parts[0])
    return found
