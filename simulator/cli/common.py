"""What the `partnersim` commands share: refusing a remote bind, printing problems,
reading a scenario file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from partnerkit.simulator.scenario import Scenario, ScenarioError, empty_scenario
from partnerkit.simulator.server import coerce_scenario, is_loopback

EXIT_INVALID = 2


def refuse_remote(args: argparse.Namespace) -> bool:
    if is_loopback(args.host) or args.allow_remote:
        return False
    print(f"partnersim: refusing to bind {args.host}: partnersim's servers and admin API have "
          "no real security; pass --allow-remote (and --admin-token) to do it anyway",
          file=sys.stderr)
    return True


def print_problems(source: str, problems: Sequence[object]) -> None:
    for problem in problems:
        render = getattr(problem, "render", None)
        print(render(source) if render else f"{source}: {problem}", file=sys.stderr)


def scenario_or_exit(path: Path | None, seed: int | None) -> Scenario | int:
    """The scenario in `path` (a well-behaved partner without one), or the exit status
    after printing its problems, each as FILE:LINE: where: what."""
    try:
        return coerce_scenario(path, seed) or empty_scenario()
    except ScenarioError as exc:
        print_scenario_problems(exc, path)
        return EXIT_INVALID


def print_scenario_problems(error: ScenarioError, path: Path | None) -> None:
    print_problems(str(path) if path else error.source, error.problems)
