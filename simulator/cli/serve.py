"""`partnersim serve` and `partnersim check`: the fake partner, and a scenario file's problems."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from starlette.types import ASGIApp

from partnerkit.simulator.app import create_app
from partnerkit.simulator.backends import StateBackend
from partnerkit.simulator.cli import common, running
from partnerkit.simulator.scenario import ScenarioError, load_scenario_file
from partnerkit.simulator.state import PartnerState


def main(args: argparse.Namespace) -> int:
    if common.refuse_remote(args):
        return common.EXIT_INVALID
    scenario = common.scenario_or_exit(args.scenario, args.seed)
    if isinstance(scenario, int):
        return scenario
    backend = running.open_backend(args, scenario)
    if isinstance(backend, int):
        return backend

    def make(backend: StateBackend | None) -> PartnerState:
        return PartnerState(scenario, journal_size=max(1, args.journal_size),
                            journal_bytes=args.journal_bytes, client_id=args.client_id,
                            client_secret=args.client_secret, backend=backend)

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine = make(running.worker_backend(args, scenario))
        return create_app(state=mine, admin_token=args.admin_token), mine.waits.release_all

    state = running.start_state(lambda: make(backend), backend, args.scenario)
    if isinstance(state, int):
        return state
    app = create_app(state=state, admin_token=args.admin_token)
    running.freeze_startup_objects()
    shared = "" if backend is None else f", {args.workers} worker(s) sharing {args.state}"
    return running.run(app, args, lambda url: [
        f"partnersim: fake partner '{scenario.name}' (seed {scenario.seed}, "
        f"{len(state.store)} orders, {len(scenario.rules)} rule(s){shared})",
        f"  url:           {url}",
        f"  client_id:     {args.client_id}",
        f"  client_secret: {args.client_secret}",
        f"  admin:         {url}/__sim/health",
        f"  dashboard:     {url}/__sim/ui",
    ], release=state.waits.release_all, workers=worker)


def check(files: Sequence[Path]) -> int:
    status = 0
    for file in files:
        try:
            scenario = load_scenario_file(file)
        except ScenarioError as exc:
            for problem in exc.problems:
                print(problem.render(str(file)), file=sys.stderr)
            status = common.EXIT_INVALID
            continue
        print(f"{file}: ok (scenario '{scenario.name}', {len(scenario.rules)} rule(s))")
    return status
