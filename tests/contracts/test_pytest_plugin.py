"""The pytest plugin as a user meets it: a test file of theirs, run by pytest."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from partnerkit.simulator import FakePartner

pytest_plugins = ["pytester"]

USER_TEST = '''
import pytest
from partnerkit.client.errors import OrderNotFound, PartnerUnavailable


def test_happy_path(partner_client, fake_partner):
    orders = list(partner_client.iter_orders())
    assert len(orders) == 250
    assert partner_client.get_order(orders[0].id) == orders[0]
    with pytest.raises(OrderNotFound):
        partner_client.get_order("ORD-999999")


@pytest.mark.scenario("flaky")
def test_survives_two_503s(partner_client, fake_partner):
    assert partner_client.get_order("ORD-000001").id == "ORD-000001"
    statuses = [e["status"] for e in fake_partner.journal() if e["path"] != "/oauth/token"]
    assert statuses == [503, 503, 200]


@pytest.mark.scenario("scenarios/down.yaml")
def test_scenario_by_path(partner_client):
    with pytest.raises(PartnerUnavailable):
        partner_client.get_order("ORD-000001")


def test_each_test_starts_clean(fake_partner):
    assert fake_partner.journal() == []
'''

FLAKY = """\
name: flaky
rules:
  - match: {path: "/v1/orders/*"}
    times: 2
    fault: {status: 503}
"""
DOWN = "rules: [{fault: {status: 503}}]\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_user=USER_TEST)
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "flaky.yaml").write_text(FLAKY)
    (scenarios / "down.yaml").write_text(DOWN)
    return pytester


def test_fixtures_and_scenario_marker(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


@pytest.fixture
def running_partner() -> Iterator[FakePartner]:
    with FakePartner() as partner:
        yield partner


def test_partner_url_aims_at_a_running_partner(project: pytest.Pytester,
                                               running_partner: FakePartner) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                          f"--partner-url={running_partner.url}")
    result.assert_outcomes(passed=4)
    # The tests really ran against this partner: it issued their tokens.
    assert running_partner.state.tokens._expiry


def test_partner_upstream_runs_the_same_tests_through_a_fault_proxy(
        project: pytest.Pytester, running_partner: FakePartner) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                          f"--partner-upstream={running_partner.url}")
    result.assert_outcomes(passed=4)
    statuses = {e["status"] for e in running_partner.journal()}
    assert running_partner.state.tokens._expiry  # the upstream issued the tokens
    assert 503 not in statuses  # the proxy acted the scenarios' 503s out by itself
    assert {200, 404} <= statuses


def test_a_bad_partner_upstream_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                          "--partner-upstream=ftp://sandbox")
    assert result.ret != 0
    assert "--partner-upstream 'ftp://sandbox': expected an http(s) URL" in \
        "\n".join(result.stdout.lines + result.stderr.lines)


def test_the_readme_example_runs_as_written(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    example = next(block for block in blocks if "def test_sync_everything" in block)
    pytester.makepyfile(test_readme_example=example)
    pytester.mkdir("scenarios")
    (pytester.path / "scenarios" / "flaky.yaml").write_text(FLAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_the_readme_example_runs_in_a_project_without_a_scenarios_folder(
        pytester: pytest.Pytester) -> None:
    """Copied into a new project as is: "flaky" is partnerkit's own scenario."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    example = next(block for block in blocks if "def test_sync_everything" in block)
    pytester.makepyfile(test_readme_example=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


PROPERTY_TESTS = '''
from dataclasses import replace

from hypothesis import Phase, given, settings

from partnerkit.contracts.strategies import fault_plans


@given(plan=fault_plans(paths=["/v1/orders/*"], kinds=["status"]))
@settings(max_examples=6, database=None, derandomize=True, deadline=None,
          phases=[Phase.generate, Phase.shrink])
def test_the_real_client_keeps_every_contract(partner_contracts, plan):
    partner_contracts.check(plan, "get_order", lambda client: client.get_order("ORD-000003"))


@given(plan=fault_plans(paths=["/v1/orders/*"], kinds=["status"]))
@settings(max_examples=6, database=None, derandomize=True, deadline=None,
          phases=[Phase.generate, Phase.shrink])
def test_a_planted_mapping_bug(partner_contracts, plan):
    partner_contracts.check(plan, "get_order",
                            lambda client: replace(client.get_order("ORD-000003"), currency="XXX"))
'''


def test_property_tests_of_your_own_judge_each_example_and_save_the_shrunk_plan_once(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_props=PROPERTY_TESTS)
    failures = tmp_path / "failures"
    monkeypatch.setenv("PARTNERKIT_FAILURES_DIR", str(failures))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-s")
    result.assert_outcomes(passed=1, failed=1)
    output = "\n".join(result.stdout.lines)
    assert "HealthCheck" not in output
    assert "M1: order ORD-000003 was mapped to" in output
    saved = failures / "test_props.py_test_a_planted_mapping_bug.yaml"
    assert sorted(p.name for p in failures.iterdir()) == [saved.name]  # the real client: none
    assert output.count("failing fault plan written to") == 1  # the final example only
    assert f"replay it: partnersim serve --scenario {saved}" in output
    assert 'the plan: {"dataset": ' in output  # shown, not only saved
    assert "# M1: order ORD-000003" in saved.read_text()


def test_an_unknown_scenario_is_a_clear_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user='''
import pytest

@pytest.mark.scenario("nope")
def test_x(fake_partner):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert result.ret != 0
    output = "\n".join(result.stdout.lines + result.stderr.lines)
    assert "no scenario 'nope'" in output
    assert "partnerkit_scenarios ini option" in output
    assert "pytest_plugin.py" not in output  # one line, no traceback of the plugin
    assert "During handling" not in output  # no chained second copy of the message


def test_partner_url_with_nothing_there_is_one_line_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_x(fake_partner):\n    pass\n")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           f"--partner-url={url}")
    assert result.ret == 4
    output = "\n".join(result.stdout.lines + result.stderr.lines)
    assert f"--partner-url {url}: nothing answers at {url}" in output
    assert "partnersim serve" in output
    assert "Traceback" not in output and len(output.splitlines()) < 10
