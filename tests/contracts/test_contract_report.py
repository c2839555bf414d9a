"""Evidence CI can show: `--partner-report DIR` (contracts.json, contracts.html),
fault coverage in the terminal summary, contract IDs as JUnit properties, and
the journal of a failed test — with a planted client bug and a clean run."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from partnerkit.client import RetryPolicy
from partnerkit.contracts import evidence
from partnerkit.contracts.check import ContractCheck
from partnerkit.contracts.schemas import schema_errors
from partnerkit.contracts.verdicts import ContractViolation
from partnerkit.simulator import FakePartner
from partnerkit.simulator.cli import main as partnersim
from partnerkit.simulator.report import FAULT_VARIANTS, build, fault_variants, write

pytest_plugins = ["pytester"]

USER_TESTS = '''
from dataclasses import replace

PLAN_503 = {"seed": 3, "rules": [{"match": {"path": "/v1/orders/*"}, "times": 1,
                                  "fault": {"status": 503}}]}
PLAN_SLOW = {"rules": [{"match": {"path": "/v1/orders/*"}, "fault": {"latency": {"fixed_ms": 5}}}]}


def test_the_real_client(partner_contracts):
    partner_contracts.check(PLAN_SLOW, "get_order", lambda client: client.get_order("ORD-000003"))
    partner_contracts.check(PLAN_503, "get_order", lambda client: client.get_order("ORD-000003"))


def test_a_planted_mapping_bug(partner_contracts):
    partner_contracts.check(PLAN_503, "get_order",
                            lambda client: replace(client.get_order("ORD-000003"), currency="XXX"))
'''

CLEAN_TESTS = USER_TESTS.split("def test_a_planted_mapping_bug")[0]

FAILING_FIXTURE_TEST = '''
def test_fails_after_traffic(partner_client, fake_partner):
    partner_client.get_order("ORD-000001")
    assert False, "a failure of the user's own"
'''


class _Page(HTMLParser):
    """What a reader of contracts.html sees: tables, <details>, links to elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.violated_cells = 0
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tables += tag == "table"
        self.violated_cells += tag == "td" and attributes.get("class") == "violated"
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def planted_run(pytester: pytest.Pytester, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> tuple[pytest.RunResult, Path]:
    monkeypatch.setenv("PARTNERKIT_FAILURES_DIR", str(tmp_path / "failures"))
    pytester.makepyfile(test_user=USER_TESTS)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           f"--partner-report={report}",
                                           f"--junitxml={report / 'junit.xml'}")
    return result, report


def test_a_planted_bug_shows_in_all_three_outputs(planted_run: tuple[pytest.RunResult, Path]
                                                  ) -> None:
    result, report = planted_run
    result.assert_outcomes(passed=1, failed=1)

    document = json.loads((report / "contracts.json").read_text())
    assert schema_errors("report", document) == []
    assert document["summary"]["operations"] == 3
    assert document["summary"]["violated_operations"] == 1
    bad = next(record for record in document["operations"] if record["violations"])
    assert bad["test_id"] == "test_user.py::test_a_planted_mapping_bug"
    assert bad["contracts"]["M1"]["held"] is False
    assert bad["contracts"]["R1"]["held"] is True
    assert [fault["variants"] for fault in bad["faults"]] == [["status:5xx"]]
    assert bad["scenario"]["seed"] == bad["seed"] == 3
    assert [entry["status"] for entry in bad["journal_excerpt"]
            if entry["path"] != "/oauth/token"] == [503, 200]
    assert document["matrix"]["M1"]["status"] == {"held": 1, "violated": 1}
    assert document["matrix"]["M1"]["latency"] == {"held": 1, "violated": 0}
    assert document["matrix"]["M1"]["rate_limit"] == {"held": 0, "violated": 0}  # never met
    journal = document["failed_test_journals"]["test_user.py::test_a_planted_mapping_bug"]
    assert journal == str(report / "journals" / "test_user.py_test_a_planted_mapping_bug.json")

    page = _Page()
    page.feed((report / "contracts.html").read_text())
    text = "".join(page.text)
    assert page.tables >= 2 and page.violated_cells >= 1
    assert "M1: order ORD-000003 was mapped to" in text
    assert f"partnersim serve --scenario {report / 'scenarios' / 'operation-3.yaml'}" in text
    assert (report / "scenarios" / "operation-3.yaml").is_file()
    assert page.external == []  # one self-contained page

    junit = ET.parse(report / "junit.xml")  # noqa: S314 - our own pytest run wrote it
    properties = {(case.get("name"), prop.get("name")): prop.get("value")
                  for case in junit.iter("testcase") for prop in case.iter("property")}
    assert properties[("test_a_planted_mapping_bug", "partnerkit.M1")] == "violated"
    assert properties[("test_the_real_client", "partnerkit.M1")] == "held"
    assert properties[("test_the_real_client", "partnerkit.R3")] == "held"

    output = "\n".join(result.stdout.lines)
    assert "partnerkit fault coverage" in output
    assert "get_order: met 2/" in output
    assert "latency, status:5xx" in output


def test_the_journal_of_a_failed_test_is_saved_and_named(pytester: pytest.Pytester,
                                                         tmp_path: Path) -> None:
    pytester.makepyfile(test_user=FAILING_FIXTURE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)
    journals = pytester.path / ".partnerkit" / "journals"
    saved = journals / "test_user.py_test_fails_after_traffic.json"
    assert f"the fake partner's journal of this test: {saved}" in "\n".join(result.stdout.lines)
    journal = json.loads(saved.read_text())
    assert journal["test"] == "test_user.py::test_fails_after_traffic"
    assert [e["path"] for e in journal["entries"]] == ["/oauth/token", "/v1/orders/ORD-000001"]
    assert journal["entries"][0]["headers"].get("authorization") is None
    assert "orderops-secret" not in saved.read_text()


def test_a_clean_run_has_no_violations_and_min_coverage_fails_it(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_user=CLEAN_TESTS)
    report = tmp_path / "report"
    low = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                        f"--partner-report={report}",
                                        "--partner-min-coverage=0.01")
    low.assert_outcomes(passed=1)
    assert low.ret == 0
    document = json.loads((report / "contracts.json").read_text())
    assert document["summary"]["violated_operations"] == 0
    share = 2 / len(FAULT_VARIANTS)
    assert document["summary"]["coverage"]["share"] == round(share, 4)

    high = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                         "--partner-min-coverage=0.5")
    assert high.ret == 1
    assert f"fault coverage {share:.1%} is below --partner-min-coverage 50.0%" in \
        "\n".join(high.stdout.lines)


def test_fault_variants_name_each_kind_of_declaration() -> None:
    assert fault_variants({"status": 429, "retry_after": 1}) == ["status:429"]
    assert fault_variants({"latency": {"fixed_ms": 1}, "status": 503}) == ["latency", "status:5xx"]
    assert fault_variants({"malformed": "bom"}) == ["malformed:bom"]
    assert fault_variants({"cursor_drift": {"insert": 5}, "drifted": {}}) == ["cursor_drift:insert"]
    assert fault_variants({"schema_drift": {"missing": ["a"], "extra": False}}) == \
        ["schema_drift:missing"]
    assert set(fault_variants({"disconnect": "hang"})) <= set(FAULT_VARIANTS)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's)")
def test_the_page_renders_in_a_real_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("PARTNERKIT_FAILURES_DIR", str(tmp_path / "failures"))
    plan = {"rules": [{"match": {"path": "/v1/orders/*"}, "times": 1, "fault": {"status": 503}}]}
    with FakePartner() as partner, evidence.collecting("test_page::planted") as collector:
        check = ContractCheck(partner, credentials=("orderops", "orderops-secret"),
                              timeout=1.0, deadline=5.0, retry=RetryPolicy(backoff_base=0.01))
        check.check(plan, "get_order", lambda client: client.get_order("ORD-000003"))
        with pytest.raises(ContractViolation):
            check.check(plan, "get_order",
                        lambda client: replace(client.get_order("ORD-000003"), currency="X"))
    report = tmp_path / "report"
    write(report, build(collector.operations, tests=1, shrunk_plans=collector.shrunk_plans))
    assert CHROMIUM is not None
    screenshot = tmp_path / "contracts.png"  # kept with the test's tmp_path, as an artifact
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                    "--window-size=1280,1400", f"--screenshot={screenshot}",
                    (report / "contracts.html").as_uri()],
                   capture_output=True, timeout=60, check=True)
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page, not a blank


def test_partnersim_verdicts_writes_the_same_report_shape(tmp_path: Path) -> None:
    """Journal verdicts for any client (here: plain httpx retrying a 404) as the
    same contracts.json a pytest run writes."""
    with FakePartner() as partner:
        token = httpx.post(f"{partner.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "orderops",
            "client_secret": "orderops-secret"}).json()["access_token"]
        headers = {"authorization": f"Bearer {token}", "x-request-id": "op-1"}
        for _ in range(2):  # the bug: a 404 tried again
            httpx.get(f"{partner.url}/v1/orders/ORD-999999", headers=headers)
        journal = tmp_path / "journal.json"
        journal.write_text(json.dumps({"entries": partner.journal()}))
    report = tmp_path / "report"
    assert partnersim(["verdicts", str(journal), "--report", str(report)]) == 1
    document = json.loads((report / "contracts.json").read_text())
    assert schema_errors("report", document) == []
    [record] = document["operations"]
    assert record["contracts"]["R1"] == {"held": False, "evidence": [3]}
    assert record["contracts"]["R3"]["held"] is True
    assert document["matrix"]["R1"]["none"] == {"held": 0, "violated": 1}
    assert "R1:" in (report / "contracts.html").read_text()
