"""What the contract report costs: the property and live contract suites with
and without `--partner-report`, interleaved in one run (target: <= 5 % more).

    .venv/bin/python bench/report_bench.py [--rounds 3]

Prints a Markdown section for bench/results.md (and appends it there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import heading, publish

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SUITE = ["tests/contracts/test_properties.py", "tests/client/test_contracts_live.py"]


def run_suite(report_dir: str | None) -> float:
    option = [f"--partner-report={report_dir}"] if report_dir else ["-o", "partnerkit_report="]
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *option,
                          *SUITE], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if run.returncode != 0:  # a benchmark of a failing suite means nothing: say why
        raise SystemExit(f"the suite failed ({' '.join(option)}):\n{run.stdout[-4000:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    without, with_report = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):  # interleaved, so both meet the same noise
            without.append(run_suite(None))
            with_report.append(run_suite(os.path.join(scratch, f"report-{number}")))
    best_without, best_with = min(without), min(with_report)
    section = "\n".join([
        heading("the contract report's cost",
                f".venv/bin/python bench/report_bench.py --rounds {args.rounds}"),
        "",
        f"`pytest {' '.join(SUITE)}`, {args.rounds} interleaved rounds each.",
        "",
        "| run | best s | median s | × without |",
        "|---|---:|---:|---:|",
        f"| without a report | {best_without:.1f} | {statistics.median(without):.1f} | 1.00 |",
        f"| `--partner-report DIR` | {best_with:.1f} | {statistics.median(with_report):.1f} | "
        f"{best_with / best_without:.3f} |",
        "",
    ])
    publish(section, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
