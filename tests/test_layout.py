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


def _imported_packages_of(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found
