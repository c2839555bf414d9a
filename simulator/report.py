"""The contract report: `contracts.json` and `contracts.html`, from judged operations.

The JSON (described by `contracts/schemas/report.schema.json`) keeps one
record per judged operation; the HTML page is the same data for people: a
matrix of contract x fault kind, coloured by what held, each violation with
its journal excerpt and the command that serves its scenario again. The page
is one self-contained file: no script, font or stylesheet from anywhere else.

Both sides write it: the pytest plugin (`--partner-report DIR`, from the
verdicts its tests judged) and `partnersim verdicts --report DIR` (from the
journal verdicts of any client), so it lives here, below both.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partnerkit.simulator.scenario import ACTIONS, MALFORMED_KINDS
from partnerkit.simulator.scenario_source import scenario_yaml

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


def acted_faults(journal: Sequence[Mapping[str, Any]]) -> list[ActedFault]:
    faults = []
    for entry in journal:
        declared = entry.get("fault")
        if isinstance(declared, Mapping) and declared.get("skipped") is None:
            faults.append(ActedFault(int(entry["seq"]), entry.get("rule"),
                                     fault_variants(declared), dict(declared)))
    return faults


REPORT_VERSION = 1
NO_FAULT = "none"
CONTRACT_IDS = ("T1", "T2", "R1", "R2", "R3", "R4", "R5", "A1", "M1", "M2", "P1", "P2", "P3",
                "E1")


# --- the numbers --------------------------------------------------------------------------


def coverage(operations: Iterable[JudgedOperation]) -> dict[str, dict[str, list[str]]]:
    """For each operation judged: the fault variants it met, and those it never met."""
    met: dict[str, set[str]] = {}
    for judged in operations:
        met.setdefault(judged.operation, set()).update(judged.variants())
    return {operation: {"met": sorted(seen & set(FAULT_VARIANTS)),
                        "never": [v for v in FAULT_VARIANTS if v not in seen]}
            for operation, seen in sorted(met.items())}


def coverage_share(per_operation: Mapping[str, Mapping[str, list[str]]]) -> float:
    """Met variants over all (operation, variant) pairs of the operations judged."""
    if not per_operation:
        return 0.0
    met = sum(len(numbers["met"]) for numbers in per_operation.values())
    return met / (len(per_operation) * len(FAULT_VARIANTS))


def matrix(records: Iterable[Mapping[str, Any]],
           operation: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """contract -> fault kind -> {held, violated}: how often a contract was judged
    on an operation that met that kind of fault ("none": no fault at all), over
    the report's operation records (of one `operation`, or all)."""
    cells: dict[str, dict[str, dict[str, int]]] = {
        contract: {kind: {"held": 0, "violated": 0} for kind in (*FAULT_KINDS, NO_FAULT)}
        for contract in CONTRACT_IDS}
    for record in records:
        if operation is not None and record["operation"] != operation:
            continue
        kinds = {kind for fault in record["faults"] for kind in fault["kinds"]} or {NO_FAULT}
        for contract, verdict in record["contracts"].items():
            for kind in kinds:
                cell = cells.setdefault(contract, {}).setdefault(kind, {"held": 0, "violated": 0})
                cell["held" if verdict["held"] else "violated"] += 1
    return cells


# --- the JSON document --------------------------------------------------------------------


def _operation_record(number: int, judged: JudgedOperation) -> dict[str, Any]:
    return {
        "number": number,
        "test_id": judged.test_id,
        "operation": judged.operation,
        "settings": judged.settings,
        "scenario": dict(judged.scenario) if judged.scenario is not None else None,
        "seed": judged.seed,
        "passed": judged.passed,
        "contracts": judged.verdicts,
        "faults": [{"seq": fault.seq, "rule": fault.rule, "variants": fault.variants,
                    "kinds": sorted({kind_of(v) for v in fault.variants}),
                    "declared": dict(fault.declared)} for fault in judged.faults],
        "violations": judged.violations,
        "journal_excerpt": [dict(entry) for entry in judged.journal_excerpt],
    }


def build(operations: Sequence[JudgedOperation], *, hypothesis_seed: Any = None,
          shrunk_plans: Sequence[Path] = (), failed_journals: Mapping[str, str] | None = None,
          tests: int = 0) -> dict[str, Any]:
    per_operation = coverage(operations)
    totals = {contract: {"held": 0, "violated": 0} for contract in CONTRACT_IDS}
    for judged in operations:
        for contract, verdict in judged.verdicts.items():
            totals.setdefault(contract, {"held": 0, "violated": 0})[
                "held" if verdict["held"] else "violated"] += 1
    records = [_operation_record(n, judged) for n, judged in enumerate(operations, 1)]
    # A failing property judges many examples; its last one is the shrunk, final
    # one. Each test's last violated operation keeps its journal excerpt.
    last_violated = {record["test_id"]: record["number"] for record in records
                     if record["violations"]}
    for record in records:
        record["detailed"] = last_violated.get(record["test_id"]) == record["number"]
        if not record["detailed"]:
            record["journal_excerpt"] = []
    return {
        "partnerkit_report": REPORT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "hypothesis_seed": None if hypothesis_seed is None else str(hypothesis_seed),
        "summary": {
            "tests": tests,
            "operations": len(operations),
            "violated_operations": sum(not judged.passed for judged in operations),
            "contracts": totals,
            "coverage": {"share": round(coverage_share(per_operation), 4),
                         "variants": list(FAULT_VARIANTS),
                         "per_operation": per_operation},
        },
        "matrix": matrix(records),
        "operations": records,
        "shrunk_plans": [{"path": str(path),
                          "text": path.read_text() if path.is_file() else ""}
                         for path in shrunk_plans],
        "failed_test_journals": dict(failed_journals or {}),
    }


def write(directory: Path, document: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write contracts.json, contracts.html and one scenario file per violated operation."""
    directory.mkdir(parents=True, exist_ok=True)
    scenarios = directory / "scenarios"
    for record in document["operations"]:
        if record["detailed"] and record["scenario"] is not None:
            scenarios.mkdir(exist_ok=True)
            (scenarios / f"operation-{record['number']}.yaml").write_text(
                scenario_yaml(record["scenario"], "\n".join(record["violations"])))
    json_path = directory / "contracts.json"
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    html_path = directory / "contracts.html"
    html_path.write_text(render_html(document, scenarios))
    return json_path, html_path


# --- the page -----------------------------------------------------------------------------

STYLE = """
:root { color-scheme: light; --ok: #1f7a3a; --ok-bg: #e3f4e8; --bad: #b42318; --bad-bg: #fde8e6;
        --none: #98a2b3; --line: #e4e7ec; --ink: #101828; --muted: #475467; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0; padding: 24px 32px 48px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 22px; } .card.bad b { color: var(--bad); }
.card.ok b { color: var(--ok); }
table { border-collapse: collapse; } th, td { border: 1px solid var(--line); padding: 4px 8px; }
th { background: #f9fafb; font-weight: 600; text-align: left; }
table.matrix td { text-align: center; min-width: 64px; font-variant-numeric: tabular-nums; }
td.held { background: var(--ok-bg); color: var(--ok); }
td.violated { background: var(--bad-bg); color: var(--bad); font-weight: 700; }
td.never { color: var(--none); }
.scroll { overflow-x: auto; max-width: 100%; }
details { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; padding: 6px 12px; }
details[open] { background: #fcfcfd; } summary { cursor: pointer; font-weight: 600; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f2f4f7; padding: 8px 10px; border-radius: 6px; overflow-x: auto; }
.violation { color: var(--bad); } .legend span { margin-right: 14px; }
.chip { display: inline-block; border-radius: 10px; padding: 0 8px; margin: 1px 2px;
        background: #eef2f6; } .chip.never { color: var(--none); background: none;
        border: 1px dashed var(--line); }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def shown(path: str | Path) -> str:
    """A path as a reader types it: relative to the working folder when inside it."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def _cell(numbers: Mapping[str, int]) -> str:
    held, violated = numbers.get("held", 0), numbers.get("violated", 0)
    if violated:
        return f'<td class="violated" title="{held} held, {violated} violated">' \
               f"{violated}&thinsp;✗ / {held}</td>"
    if held:
        return f'<td class="held" title="{held} held">{held}&thinsp;✓</td>'
    return '<td class="never" title="never exercised">·</td>'


def _matrix_table(cells: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
    kinds = [*FAULT_KINDS, NO_FAULT]
    head = "".join(f"<th>{_e(kind)}</th>" for kind in kinds)
    contracts = [*CONTRACT_IDS, *sorted(set(cells) - set(CONTRACT_IDS))]
    rows = "".join(
        f"<tr><th>{_e(contract)}</th>"
        + "".join(_cell(cells.get(contract, {}).get(kind, {})) for kind in kinds) + "</tr>"
        for contract in contracts if contract in CONTRACT_IDS or cells.get(contract))
    return (f'<div class="scroll"><table class="matrix"><thead><tr><th>contract</th>{head}'
            f"</tr></thead><tbody>{rows}</tbody></table></div>")


def _journal_table(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(e.get('seq'))}</td><td>{_e(e.get('at_iso', e.get('at')))}</td>"
        f"<td>{_e(e.get('method'))} {_e(e.get('path'))}</td>"
        f"<td>{_e('cut' if e.get('status') is None else e.get('status'))}</td>"
        f"<td>{_e(e.get('rule') if e.get('rule') is not None else '')}</td>"
        f"<td><code>{_e(json.dumps(e.get('fault')) if e.get('fault') else '')}</code></td>"
        f"<td>{_e(e.get('duration_ms'))}</td></tr>" for e in entries)
    return ("<table><thead><tr><th>seq</th><th>arrived</th><th>request</th><th>status</th>"
            "<th>rule</th><th>fault</th><th>ms</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _violation_details(record: Mapping[str, Any], scenarios: Path, examples: int) -> str:
    scenario_file = scenarios / f"operation-{record['number']}.yaml"
    replay = (f"<p>Serve its scenario again: <code>partnersim serve --scenario "
              f"{_e(shown(scenario_file))}</code></p>" if record["scenario"] is not None else "")
    violations = "".join(f'<li class="violation">{_e(v)}</li>' for v in record["violations"])
    more = (f"<p>The last of {examples} violating examples (for a property, the shrunk "
            f"one).</p>" if examples > 1 else "")
    return (f"<details open><summary>{_e(record['test_id'])} — {_e(record['operation'])}: "
            f"{len(record['violations'])} violation(s)</summary><ul>{violations}</ul>{more}"
            f"{replay}"
            f"<p>Journal of the operation:</p>{_journal_table(record['journal_excerpt'])}"
            "</details>")


def _coverage_section(per_operation: Mapping[str, Mapping[str, list[str]]]) -> str:
    parts = []
    for operation, numbers in per_operation.items():
        met = "".join(f'<span class="chip">{_e(v)}</span>' for v in numbers["met"])
        never = "".join(f'<span class="chip never">{_e(v)}</span>' for v in numbers["never"])
        share = len(numbers["met"]) / len(FAULT_VARIANTS)
        parts.append(f"<details><summary>{_e(operation)}: met {len(numbers['met'])} of "
                     f"{len(FAULT_VARIANTS)} fault variants ({share:.0%})</summary>"
                     f"<p>Met: {met or '—'}</p><p>Never met: {never or '—'}</p></details>")
    return "".join(parts) or "<p>No operation was judged.</p>"


def render_html(document: Mapping[str, Any], scenarios: Path) -> str:
    summary = document["summary"]
    records = document["operations"]
    violated = [record for record in records if record["detailed"]]
    examples = {test: sum(r["test_id"] == test and bool(r["violations"]) for r in records)
                for test in {record["test_id"] for record in violated}}
    per_operation_tables = "".join(
        f"<details><summary>{_e(operation)}</summary>"
        f"{_matrix_table(matrix(records, operation))}</details>"
        for operation in summary["coverage"]["per_operation"])
    plans = "".join(f"<details><summary>{_e(shown(plan['path']))}</summary><pre>{_e(plan['text'])}"
                    "</pre></details>" for plan in document["shrunk_plans"])
    journals = "".join(f"<li><code>{_e(test)}</code>: <code>{_e(shown(path))}</code></li>"
                       for test, path in document["failed_test_journals"].items())
    bad = summary["violated_operations"]
    violations = "".join(_violation_details(record, scenarios, examples[record["test_id"]])
                         for record in violated)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>partnerkit contract report</title><style>{STYLE}</style></head>
<body><main>
<h1>partnerkit contract report</h1>
<p class="meta">Created {_e(document['created'])} · Hypothesis seed
{_e(document['hypothesis_seed'] or 'not set')} · report format {REPORT_VERSION}</p>
<div class="cards">
<div class="card"><span>tests</span><b>{summary['tests']}</b></div>
<div class="card"><span>operations judged</span><b>{summary['operations']}</b></div>
<div class="card {'bad' if bad else 'ok'}"><span>with violations</span><b>{bad}</b></div>
<div class="card"><span>fault coverage</span><b>{summary['coverage']['share']:.0%}</b></div>
</div>
<h2>Contracts &times; fault kinds</h2>
<p class="legend"><span>✓ held (count)</span><span>✗ violated / held</span>
<span>· never exercised</span> — an operation counts under every fault kind it met.</p>
{_matrix_table(document['matrix'])}
<h2>By operation</h2>{per_operation_tables or '<p>No operation was judged.</p>'}
<h2>Violations</h2>
{violations or '<p>None: every judged contract held.</p>'}
<h2>Fault coverage</h2>{_coverage_section(summary['coverage']['per_operation'])}
<h2>Shrunk fault plans</h2>{plans or '<p>None written in this run.</p>'}
<h2>Journals of failed tests</h2>{f'<ul>{journals}</ul>' if journals else '<p>None.</p>'}
</main></body></html>
"""


def safe_name(test_id: str) -> str:
    """A test id as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_")[:200] or "test"
