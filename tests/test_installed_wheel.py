"""Installed, partnerkit lives under one namespace and sits beside a user's own
`client` package: the built wheel, in a fresh venv, runs the plugin's fixtures
in a project that has `client/` and `contracts/` packages of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_CLIENT = '''
"""The user's own `client` package: partnerkit must not shadow it, nor it partnerkit."""
WHO = "the user's client"
'''

USER_TEST = '''
import client
import contracts
import partnerkit
import pytest
from partnerkit.client import PartnerClient
from partnerkit.client.errors import OrderNotFound


def test_both_packages_are_what_they_claim():
    assert client.WHO == "the user's client"
    assert contracts.WHO == "the user's contracts"
    assert "site-packages" in partnerkit.__file__


def test_the_plugin_fixtures_work(partner_client, fake_partner):
    assert isinstance(partner_client, PartnerClient)
    assert partner_client.get_order("ORD-000001").id == "ORD-000001"
    with pytest.raises(OrderNotFound):
        partner_client.get_order("ORD-999999")
    assert [e["path"] for e in fake_partner.journal()][0] == "/oauth/token"


@pytest.mark.scenario("flaky")
def test_the_scenario_marker_works(partner_client, fake_partner):
    partner_client.get_order("ORD-000001")
    statuses = [e["status"] for e in fake_partner.journal() if e["path"] != "/oauth/token"]
    assert statuses == [503, 503, 200]
'''


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.is_file() else shutil.which("uv")


@pytest.mark.skipif(_uv() is None, reason="needs uv (make bootstraps it into .tools/)")
def test_the_wheel_installs_under_one_namespace_beside_a_users_client(tmp_path: Path) -> None:
    uv = _uv()
    assert uv is not None
    offline = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    dist = tmp_path / "dist"
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True,
                   capture_output=True, env=offline, timeout=120)
    wheel = next(dist.glob("partnerkit-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", str(venv), "--python", shutil.which("python3") or "python3"],
                   check=True, capture_output=True, env=offline, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", "--python", str(python), str(wheel)],
                   check=True, capture_output=True, env=offline, timeout=120)
    # The wheel's dependencies come from this environment's site-packages, added
    # as a plain path: its .pth files (the editable install of this checkout)
    # are not read, so nothing of the repository is importable in that venv.
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "zz_locked_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    project = tmp_path / "project"
    for package, who in (("client", USER_CLIENT), ("contracts", USER_CLIENT)):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(
            who.replace("the user's client", f"the user's {package}"))
    (project / "scenarios").mkdir()
    (project / "scenarios" / "flaky.yaml").write_text(
        'rules: [{match: {path: "/v1/orders/*"}, times: 2, fault: {status: 503}}]\n')
    (project / "tests").mkdir()
    (project / "tests" / "test_user.py").write_text(textwrap.dedent(USER_TEST))
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\naddopts = "-p no:cacheprovider"\n')

    run = subprocess.run([str(python), "-m", "pytest", "-q"], cwd=project, capture_output=True,
                         text=True, timeout=240,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout
