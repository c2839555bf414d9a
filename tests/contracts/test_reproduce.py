"""A failing property leaves the shrunk fault plan behind as a scenario file,
and `partnersim serve --scenario FILE` reproduces the failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from partnerkit.contracts.harness import observe
from partnerkit.contracts.remote import RemotePartner
from partnerkit.contracts.strategies import fault_plans
from partnerkit.contracts.verdicts import Observation, judge
from partnerkit.simulator import FakePartner, load_scenario_file
from tests.contracts.properties import SETTINGS as PROPERTY_SETTINGS
from tests.contracts.properties import holds_under
from tests.contracts.throwaway_client import Bugs, ThrowawayClient

REPO = Path(__file__).resolve().parents[2]
PLANTED = Bugs(ignore_retry_after=True)  # the bug: retries a 429/503 at once
# A deadline no generated Retry-After (at most 2 s) comes near: the planted bug then
# breaks R3 one way only, whatever the machine's load, and the plan shrinks to it.
SETTINGS = replace(PROPERTY_SETTINGS, deadline=5.0)


def _observe_throwaway(partner: Any, bugs: Bugs) -> Observation:
    client = ThrowawayClient(partner.url, bugs, timeout=SETTINGS.timeout,
                             deadline=SETTINGS.deadline, max_attempts=SETTINGS.max_attempts,
                             backoff_base=SETTINGS.backoff_base,
                             backoff_max=SETTINGS.backoff_max)
    try:
        return observe(partner, "get_order", lambda: client.get_order("ORD-000003"), SETTINGS)
    finally:
        client.close()


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def serve(scenario: Path) -> RemotePartner:
        process = subprocess.Popen(
            [sys.executable, "-m", "partnerkit.simulator.cli", "serve", "--port", "0", "--scenario",
             str(scenario)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        processes.append(process)
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(2))
        url = re.search(r"url:\s+(\S+)", banner)
        assert url, banner + (process.stderr.read() if process.stderr else "")
        return RemotePartner(url.group(1))

    yield serve
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_a_failing_plan_is_saved_and_partnersim_serve_reproduces_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: Any) -> None:
    monkeypatch.setenv("PARTNERKIT_FAILURES_DIR", str(tmp_path))
    with FakePartner({"dataset": {"orders": 12, "page_size": 5}, "rules": []}) as partner:

        @given(plan=fault_plans(paths=["/v1/orders/*"], kinds=["status"]))
        @settings(max_examples=150, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False,
                  phases=[Phase.generate, Phase.shrink])  # no explain phase: it re-runs many
        def property_with_planted_bug(plan: dict[str, Any]) -> None:
            holds_under(partner, plan, "planted_bug",
                        lambda: _observe_throwaway(partner, PLANTED), ["R3"])

        with pytest.raises(AssertionError, match="R3"):
            property_with_planted_bug()

    saved = tmp_path / "planted_bug.yaml"
    assert saved.is_file()
    text = saved.read_text()
    assert "partnersim serve --scenario" in text and "# R3:" in text
    plan = load_scenario_file(saved)  # a valid scenario, and a small one
    assert 1 <= len(plan.rules) <= 2

    check = subprocess.run([sys.executable, "-m", "partnerkit.simulator.cli", "check", str(saved)],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 0, check.stderr

    partner = served(saved)
    try:
        broken = judge(_observe_throwaway(partner, PLANTED), ["R3"])
        assert not broken.passed, "the saved scenario did not reproduce the failure"
        partner.reset()
        assert judge(_observe_throwaway(partner, Bugs()), ["R3"]).passed  # without the bug
    finally:
        partner.close()
