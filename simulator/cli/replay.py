"""`partnersim replay` and `partnersim import-har`: serve recorded traffic."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

from partnerkit.simulator.app import create_replay_app
from partnerkit.simulator.backends import StateBackend
from partnerkit.simulator.cassette import CassetteError, redact_interaction
from partnerkit.simulator.cli import common, running
from partnerkit.simulator.cli.record import open_cassette, read_file
from partnerkit.simulator.formats import read_har
from partnerkit.simulator.replay import MAX_PACE, MissAnswer, RecordingIndex, ReplayState


def miss_answer(status: int, body_file: Path | None) -> MissAnswer | None:
    """The answer to a miss, or None after saying what is wrong with the options."""
    body = None
    if body_file is not None:
        try:
            body = body_file.read_bytes()
        except OSError as exc:
            print(f"partnersim: --miss-body {body_file}: cannot read it: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return None
    try:
        content_type = "application/json"
        if body is not None:
            try:
                json.loads(body)
            except ValueError:
                content_type = "text/plain; charset=utf-8"
        return MissAnswer(status, body, content_type)
    except ValueError as exc:
        print(f"partnersim: --miss-status: {exc}", file=sys.stderr)
        return None


def main(args: argparse.Namespace) -> int:
    if common.refuse_remote(args):
        return common.EXIT_INVALID
    started = time.perf_counter()
    try:
        index, skipped = RecordingIndex.from_file(args.cassette, match_body=args.match_body)
    except CassetteError as exc:
        print(f"partnersim: cannot replay {args.cassette}:", file=sys.stderr)
        common.print_problems(exc.source, exc.problems)
        return common.EXIT_INVALID
    common.print_problems(str(args.cassette), skipped)
    miss = miss_answer(args.miss_status, args.miss_body)
    if miss is None:
        return common.EXIT_INVALID
    if args.recorded_latency is not None and not 0 <= args.recorded_latency <= MAX_PACE:
        print(f"partnersim: --recorded-latency {args.recorded_latency}: a factor from 0 to "
              f"{MAX_PACE:g}", file=sys.stderr)
        return common.EXIT_INVALID
    scenario = common.scenario_or_exit(args.faults, args.seed)
    if isinstance(scenario, int):
        return scenario
    faults = scenario if args.faults is not None or args.seed is not None else None
    kind = f"replay-{args.cassette.stem}-"
    backend = running.open_backend(args, scenario, kind)
    if isinstance(backend, int):
        return backend

    def make(recordings: RecordingIndex, backend: StateBackend | None) -> ReplayState:
        return ReplayState(recordings, faults, cassette=str(args.cassette),
                           journal_size=max(1, args.journal_size),
                           journal_bytes=args.journal_bytes, miss=miss,
                           recorded_latency=args.recorded_latency, backend=backend)

    state = running.start_state(lambda: make(index, backend), backend, args.faults)
    if isinstance(state, int):
        return state

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine = make(RecordingIndex.from_file(args.cassette, match_body=args.match_body)[0],
                    running.worker_backend(args, scenario, kind))
        return create_replay_app(mine, admin_token=args.admin_token), mine.waits.release_all
    loaded_s = time.perf_counter() - started
    running.freeze_startup_objects()  # with 100,000 recordings a full GC pass took 0.5 s
    app = create_replay_app(state, admin_token=args.admin_token)
    overlay = (f"fault overlay '{state.scenario.name}' ({len(state.scenario.rules)} rule(s))"
               if args.faults else "no fault overlay")
    return running.run(app, args, lambda url: [
        f"partnersim: replaying {args.cassette} ({len(index)} interactions, "
        f"{index.stats()['distinct_requests']} distinct requests, loaded in {loaded_s:.2f} s; "
        f"{overlay})",
        f"  url:           {url}",
        "  credentials:   any (recorded tokens are redacted; tokens are not checked)",
        f"  matching:      method, path, query{', body' if args.match_body else ''}",
        f"  misses:        {miss.status} with X-Partnersim-Miss (counted in /__sim/health)",
        f"  pace:          {pace(args.recorded_latency)}",
        f"  admin:         {url}/__sim/health",
        f"  dashboard:     {url}/__sim/ui",
    ], release=state.waits.release_all, workers=worker)


def pace(factor: float | None) -> str:
    if factor is None:
        return "immediate (--recorded-latency to serve the recorded durations)"
    return f"each answer after its recorded duration x {factor:g}"


def import_har(args: argparse.Namespace) -> int:
    try:
        interactions, skipped = read_har(read_file(args.har), str(args.har))
    except CassetteError as exc:
        print(f"partnersim: cannot import {args.har}:", file=sys.stderr)
        common.print_problems(exc.source, exc.problems)
        return common.EXIT_INVALID
    common.print_problems(str(args.har), skipped)
    if not interactions:
        print(f"partnersim: {args.har}: no entry to import (a cassette of nothing would "
              "replay nothing)", file=sys.stderr)
        return common.EXIT_INVALID
    writer = open_cassette(args.out, append=None)
    if isinstance(writer, int):
        return writer
    try:
        for interaction in interactions:
            writer.write(redact_interaction(interaction))
    finally:
        writer.close()
    print(f"partnersim: wrote {len(interactions)} interactions to {args.out} (secrets as "
          f"<redacted>{f'; {len(skipped)} entries skipped' if skipped else ''})")
    return 0
