"""When a property fails: the shrunk fault plan as a scenario file you can serve.

The property tests call `save_failing_plan()` on every failing example.
Hypothesis runs the shrunk example last, so the file left behind is the
smallest plan that breaks the contract, and

    partnersim serve --scenario FILE

replays it for a debugger, a curl or the client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from partnerkit.contracts import evidence
from partnerkit.simulator.scenario_source import scenario_yaml

DEFAULT_DIR = Path(".partnerkit") / "failing-scenarios"


def failures_dir() -> Path:
    return Path(os.environ.get("PARTNERKIT_FAILURES_DIR", DEFAULT_DIR))


def save_failing_plan(test_name: str, plan: Mapping[str, Any], why: str) -> Path:
    """Write `plan` (a scenario) with `why` as a comment; return the file."""
    directory = failures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', test_name)}.yaml"
    header = (f"A fault plan that breaks a client contract, found by {test_name}.\n"
              f"Replay it: partnersim serve --scenario {path}\n\n{why}")
    path.write_text(scenario_yaml(plan, header))
    evidence.note_shrunk_plan(path)
    print(f"\npartnerkit: failing fault plan written to {path}\n{why}")
    return path
