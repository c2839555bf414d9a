"""Evidence of a test run: every judged operation, which contracts held under
which faults, and how much of the fault space each operation met.

`judge()` hands each report to `note()`; outside a `collecting()` block that
costs one context-variable lookup and keeps nothing. The pytest plugin opens
one collector per test and writes what it gathered as the contract report
(`simulator.report`: `--partner-report DIR`), the fault-coverage summary and
JUnit properties.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partnerkit.simulator.report import JudgedOperation, acted_faults

if TYPE_CHECKING:
    from partnerkit.contracts.verdicts import Report


@dataclass
class Collector:
    """What one test judged; `scenario` is what the partner ran (set by the fixtures)."""

    test_id: str
    scenario: Mapping[str, Any] | None = None
    operations: list[JudgedOperation] = field(default_factory=list)
    shrunk_plans: list[Path] = field(default_factory=list)


_current: contextvars.ContextVar[Collector | None] = contextvars.ContextVar(
    "partnerkit_evidence", default=None)


@contextmanager
def collecting(test_id: str) -> Iterator[Collector]:
    """Gather every report judged inside the block (one test)."""
    collector = Collector(test_id)
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)


def set_scenario(scenario: Mapping[str, Any] | None) -> None:
    """Tell the current collector which scenario the partner now runs."""
    collector = _current.get()
    if collector is not None:
        collector.scenario = scenario


def note_shrunk_plan(path: Path) -> None:
    """A failing property wrote its shrunk plan here."""
    collector = _current.get()
    if collector is not None and path not in collector.shrunk_plans:
        collector.shrunk_plans.append(path)


def note(report: Report) -> None:
    """Record a judged report in the current collector, if there is one."""
    collector = _current.get()
    if collector is None:
        return
    observation = report.observation
    violated: dict[str, list[int]] = {}
    for violation in report.violations:
        seqs = violated.setdefault(violation.contract, [])
        if violation.seq is not None:
            seqs.append(violation.seq)
    verdicts = {contract: {"held": contract not in violated,
                           "evidence": violated.get(contract, [])}
                for contract in report.judged}
    settings = observation.settings
    scenario = collector.scenario
    seed = scenario.get("seed", 0) if isinstance(scenario, Mapping) else None
    collector.operations.append(JudgedOperation(
        test_id=collector.test_id, operation=observation.operation,
        settings={"timeout": settings.timeout, "deadline": settings.deadline,
                  "max_attempts": settings.max_attempts,
                  "backoff_base": settings.backoff_base, "backoff_max": settings.backoff_max,
                  "retry_after_max": settings.retry_after_max,
                  "max_pages": settings.max_pages},
        verdicts=verdicts, faults=acted_faults(observation.journal), scenario=scenario,
        seed=seed if isinstance(seed, int) else None,
        violations=[str(violation) for violation in report.violations],
        journal_excerpt=[dict(entry) for entry in observation.journal]
        if report.violations else []))


__all__ = ["Collector", "collecting", "note", "note_shrunk_plan", "set_scenario"]
