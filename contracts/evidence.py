"""Evidence of a test run: every judged operation, which contracts held under
which faults, and how much of the fault space each operation met.

`judge()` hands each report to `note()`; outside a `collecting()` block that
costs one context-variable lookup and keeps nothing. The pytest plugin opens
one collector per test and writes what it gathered as the contract report
(`--partner-report DIR`), the fault-coverage summary and JUnit properties.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partnerkit.simulator.scenario import ACTIONS, MALFORMED_KINDS

if TYPE_CHECKING:
    from partnerkit.contracts.verdicts import Report

#: What a fault can be, as `kind` or `kind:variant`: the space coverage is measured in.
FAULT_VARIANTS: tuple[str, ...] = (
    "latency", "dribble",
    "status:429", "status:4xx", "status:5xx", "rate_limit",
    *(f"malformed:{kind}" for kind in MALFORMED_KINDS),
    *(f"schema_drift:{kind}" for kind in ("missing", "wrong_type", "null", "unknown_enum",
                                          "extra")),
    *(f"cursor_drift:{kind}" for kind in ("insert", "update", "delete", "repeat", "expire")),
    *(f"disconnect:{kind}" for kind in ("reset", "mid_body", "hang")),
    "auth:expire_token",
)
FAULT_KINDS: tuple[str, ...] = ("latency", "dribble", *ACTIONS)


def fault_variants(fault: Mapping[str, Any]) -> list[str]:
    """The kinds and variants one journaled fault declaration stands for."""
    found: list[str] = []
    for kind, value in fault.items():
        if kind in ("latency", "dribble", "rate_limit"):
            found.append(kind)
        elif kind == "status" and isinstance(value, int):
            found.append("status:429" if value == 429 else f"status:{value // 100}xx")
        elif kind in ("malformed", "disconnect", "auth") and isinstance(value, str):
            found.append(f"{kind}:{value}")
        elif kind in ("schema_drift", "cursor_drift") and isinstance(value, Mapping):
            found += [f"{kind}:{name}" for name, setting in value.items()
                      if setting and name not in ("drifted",)]
    return found


def kind_of(variant: str) -> str:
    return variant.split(":", 1)[0]


@dataclass
class ActedFault:
    """A fault the fake partner acted out during an operation."""

    seq: int
    rule: str | int | None
    variants: list[str]
    declared: Mapping[str, Any]


@dataclass
class JudgedOperation:
    """One `judge()` call: the operation, its verdicts and the faults it met."""

    test_id: str
    operation: str
    settings: dict[str, Any]
    verdicts: dict[str, dict[str, Any]]  # contract ID -> {"held": bool, "evidence": [seq…]}
    faults: list[ActedFault]
    scenario: Mapping[str, Any] | None
    seed: int | None
    violations: list[str]
    journal_excerpt: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def variants(self) -> set[str]:
        return {variant for fault in self.faults for variant in fault.variants}


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


def acted_faults(journal: Sequence[Mapping[str, Any]]) -> list[ActedFault]:
    faults = []
    for entry in journal:
        declared = entry.get("fault")
        if isinstance(declared, Mapping) and declared.get("skipped") is None:
            faults.append(ActedFault(int(entry["seq"]), entry.get("rule"),
                                     fault_variants(declared), dict(declared)))
    return faults


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


__all__ = ["FAULT_VARIANTS", "Collector", "JudgedOperation", "collecting", "fault_variants",
           "note", "note_shrunk_plan", "set_scenario"]
