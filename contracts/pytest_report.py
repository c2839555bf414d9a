"""What a pytest run leaves behind: the contract report, fault coverage in the
terminal summary, contract IDs as JUnit properties, and the journal of every
failed test that used the fake partner. Registered by the partnerkit plugin.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from partnerkit.contracts import evidence
from partnerkit.contracts.evidence import Collector
from partnerkit.simulator.report import (
    FAULT_VARIANTS,
    JudgedOperation,
    build,
    coverage,
    coverage_share,
    safe_name,
    write,
)

PARTNER_FIXTURES = ("fake_partner", "partner_contracts", "partnerkit_server")
DEFAULT_JOURNALS = Path(".partnerkit") / "journals"
collector_key = pytest.StashKey[Collector]()


def add_options(parser: pytest.Parser, group: Any) -> None:
    group.addoption("--partner-report", default=None, metavar="DIR",
                    help="write contracts.json and contracts.html (every judged operation, "
                         "contract x fault matrix, coverage) and failed tests' journals to DIR")
    group.addoption("--partner-min-coverage", default=None, type=float, metavar="SHARE",
                    help="fail the run when the judged operations met less than SHARE "
                         "(0-1) of the fault variants")
    parser.addini("partnerkit_report", "directory for the contract report "
                  "(as --partner-report)", default="")


class RunEvidence:
    """Every judged operation of the session, and what to write at its end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        option = config.getoption("--partner-report") or config.getini("partnerkit_report")
        self.report_dir = Path(str(config.rootpath)) / option if option else None
        self.min_coverage: float | None = config.getoption("--partner-min-coverage")
        self.operations: list[JudgedOperation] = []
        self.shrunk_plans: list[Path] = []
        self.failed_journals: dict[str, str] = {}
        self.tests = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        with evidence.collecting(item.nodeid) as collector:
            item.stash[collector_key] = collector
            try:
                return (yield)
            finally:
                self.tests += 1
                self.operations += collector.operations
                self.shrunk_plans += [p for p in collector.shrunk_plans
                                      if p not in self.shrunk_plans]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        collector = item.stash.get(collector_key, None)
        if call.when == "call" and collector is not None:
            for contract, verdict in sorted(_verdicts_of(collector).items()):
                item.user_properties.append((f"partnerkit.{contract}", verdict))
        report: pytest.TestReport = yield
        if report.failed and report.when == "call":
            saved = self._save_journal(item)
            if saved is not None:
                report.sections.append(("partnerkit", f"the fake partner's journal of this "
                                                      f"test: {saved}"))
        return report

    def _save_journal(self, item: pytest.Item) -> Path | None:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        partner = next((funcargs[name] for name in PARTNER_FIXTURES if name in funcargs), None)
        partner = getattr(partner, "partner", partner)  # partner_contracts wraps one
        if partner is None or not hasattr(partner, "journal"):
            return None
        directory = (self.report_dir / "journals" if self.report_dir is not None
                     else Path(str(self.config.rootpath)) / DEFAULT_JOURNALS)
        try:
            entries = partner.journal()
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{safe_name(item.nodeid)}.json"
            path.write_text(json.dumps({"test": item.nodeid, "entries": entries}, indent=1,
                                       default=str) + "\n")
        except Exception:  # the failure itself matters more than its journal
            return None
        self.failed_journals[item.nodeid] = str(path)
        return path

    def coverage_share(self) -> float:
        return coverage_share(coverage(self.operations))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report_dir is not None:
            document = build(self.operations, tests=self.tests,
                             hypothesis_seed=self.config.getoption("hypothesis_seed", None),
                             shrunk_plans=self.shrunk_plans,
                             failed_journals=self.failed_journals)
            write(self.report_dir, document)
        if self.min_coverage is not None and self.coverage_share() < self.min_coverage \
                and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.operations and self.min_coverage is None:
            if self.report_dir is not None:
                terminalreporter.write_line(f"partnerkit: no operation judged; contract report: "
                                            f"{self.report_dir / 'contracts.html'}")
            return
        write_line = terminalreporter.write_line
        terminalreporter.section("partnerkit fault coverage")
        per_operation = coverage(self.operations)
        violated = sum(not judged.passed for judged in self.operations)
        write_line(f"{len(self.operations)} operation(s) judged, {violated} with violations")
        for operation, numbers in per_operation.items():
            write_line(f"{operation}: met {len(numbers['met'])}/{len(FAULT_VARIANTS)} fault "
                       f"variants: {', '.join(numbers['met']) or 'none'}")
            write_line(f"  never met: {', '.join(numbers['never']) or 'none'}")
        share = self.coverage_share()
        write_line(f"fault coverage: {share:.1%} of (operation, fault variant) pairs")
        if self.min_coverage is not None and share < self.min_coverage:
            write_line(f"partnerkit: fault coverage {share:.1%} is below "
                       f"--partner-min-coverage {self.min_coverage:.1%}", red=True)
        if self.report_dir is not None:
            write_line(f"contract report: {self.report_dir / 'contracts.html'} "
                       f"(and contracts.json)")


def _verdicts_of(collector: Collector) -> dict[str, str]:
    """contract ID -> "held" or "violated" over the test's judged operations."""
    verdicts: dict[str, str] = {}
    for judged in collector.operations:
        for contract, verdict in judged.verdicts.items():
            if not verdict["held"]:
                verdicts[contract] = "violated"
            else:
                verdicts.setdefault(contract, "held")
    return verdicts
