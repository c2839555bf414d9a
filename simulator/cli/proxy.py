"""`partnersim proxy`: faults in front of a real partner sandbox."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from starlette.types import ASGIApp

from partnerkit.simulator.app import create_proxy_app
from partnerkit.simulator.backends import StateBackend
from partnerkit.simulator.cassette import CassetteWriter
from partnerkit.simulator.cli import common, running
from partnerkit.simulator.cli.record import bad_upstream, open_cassette
from partnerkit.simulator.proxy import ProxyState
from partnerkit.simulator.upstream import CassetteTee, Upstream


def main(args: argparse.Namespace) -> int:
    if common.refuse_remote(args) or bad_upstream(args.upstream):
        return common.EXIT_INVALID
    if not args.timeout > 0:
        print(f"partnersim: --timeout {args.timeout}: must be more than 0 seconds",
              file=sys.stderr)
        return common.EXIT_INVALID
    if args.workers > 1 and args.out is not None:
        print("partnersim: --out records from one process: use --workers 1 to record",
              file=sys.stderr)
        return common.EXIT_INVALID
    upstream = Upstream(args.upstream, timeout_s=args.timeout, forwarded=True)
    scenario = common.scenario_or_exit(args.faults, args.seed)
    if isinstance(scenario, int):
        return scenario
    backend = running.open_backend(args, scenario, "proxy-")
    if isinstance(backend, int):
        return backend

    def make(upstream: Upstream, backend: StateBackend | None) -> ProxyState:
        return ProxyState(upstream, scenario, journal_size=max(1, args.journal_size),
                          journal_bytes=args.journal_bytes, backend=backend)

    state = running.start_state(lambda: make(upstream, backend), backend, args.faults)
    if isinstance(state, int):
        return state

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine = make(Upstream(args.upstream, timeout_s=args.timeout, forwarded=True),
                    running.worker_backend(args, scenario, "proxy-"))
        return create_proxy_app(mine, admin_token=args.admin_token), mine.waits.release_all
    writer: CassetteWriter | None = None
    if args.out is not None:
        opened = open_cassette(args.out, args.append)
        if isinstance(opened, int):
            return opened
        writer = opened
        state.tee = CassetteTee(writer, upstream.url)
    app = create_proxy_app(state, admin_token=args.admin_token)
    running.freeze_startup_objects()
    recording = f"  recording:     clean answers into {args.out} (secrets as <redacted>)" \
        if args.out is not None else "  recording:     off (--out CASSETTE to record)"
    try:
        return running.run(app, args, lambda url: [
            f"partnersim: fault proxy to {upstream.url}, faults '{scenario.name}' "
            f"({len(scenario.rules)} rule(s), seed {scenario.seed})",
            f"  url:           {url}   (point the client here; credentials are the upstream's)",
            recording,
            f"  admin:         {url}/__sim/health",
            f"  dashboard:     {url}/__sim/ui",
        ], release=state.waits.release_all, aclose=upstream.aclose,
            farewell=lambda: "partnersim: stopped" + (
                f"; {writer.count} interactions in {args.out}" if writer is not None else ""),
            workers=worker)
    finally:
        if writer is not None:
            writer.close()
