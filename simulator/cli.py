"""`partnersim`: run the fake partner, or check a scenario file."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator.app import create_app
from simulator.scenario import (
    Scenario,
    ScenarioError,
    empty_scenario,
    load_scenario_file,
)
from simulator.server import PartnerServer, coerce_scenario, is_loopback, make_config
from simulator.state import PartnerState

EXIT_INVALID = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="partnersim",
        description="A scriptable fake of OrderOps' partner API: latency, 429s, 5xx, malformed "
                    "JSON, schema and cursor drift, expired tokens and dropped connections.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the fake partner",
        description="Run the fake partner until Ctrl-C or SIGTERM. It prints its URL and the "
                    "client credentials; the admin API is under /__sim/.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; others need --allow-remote)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    serve.add_argument("--scenario", type=Path, metavar="FILE",
                       help="scenario file (YAML or JSON); default: a well-behaved partner")
    serve.add_argument("--seed", type=int, help="override the scenario's seed")
    serve.add_argument("--journal-size", type=int, default=10_000, metavar="N",
                       help="journal ring buffer size (default 10000)")
    serve.add_argument("--admin-token", metavar="TOKEN",
                       help="require this X-Admin-Token on the /__sim/ admin API")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow binding to a non-loopback address")
    serve.add_argument("--http", choices=("httptools", "h11"), default="httptools",
                       help="HTTP stack (default httptools: the fast one)")
    serve.add_argument("--client-id", default="orderops", help="accepted client_id")
    serve.add_argument("--client-secret", default="orderops-secret",
                       help="accepted client_secret")

    check = commands.add_parser(
        "check", help="validate scenario files",
        description="Validate scenario files. Exit 0 when all are valid, 2 with one line per "
                    "problem (FILE:LINE: json.path: message) otherwise.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return parser


def _check(files: Sequence[Path]) -> int:
    status = 0
    for file in files:
        try:
            scenario = load_scenario_file(file)
        except ScenarioError as exc:
            for problem in exc.problems:
                print(problem.render(str(file)), file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{file}: ok (scenario '{scenario.name}', {len(scenario.rules)} rule(s))")
    return status


def _load(path: Path | None, seed: int | None) -> Scenario:
    return coerce_scenario(path, seed) or empty_scenario()


def _serve(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.allow_remote:
        print(f"partnersim: refusing to bind {args.host}: the fake partner and its admin API "
              "have no real security; pass --allow-remote (and --admin-token) to do it anyway",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        scenario = _load(args.scenario, args.seed)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem.render(exc.source), file=sys.stderr)
        return EXIT_INVALID
    state = PartnerState(scenario, journal_size=max(1, args.journal_size),
                         client_id=args.client_id, client_secret=args.client_secret)
    app = create_app(state=state, admin_token=args.admin_token)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"partnersim: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    sock.listen(2048)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{host}:{port}"
    print(f"partnersim: fake partner '{scenario.name}' (seed {scenario.seed}, "
          f"{len(state.store)} orders, {len(scenario.rules)} rule(s))")
    print(f"  url:           {url}")
    print(f"  client_id:     {args.client_id}")
    print(f"  client_secret: {args.client_secret}")
    print(f"  admin:         {url}/__sim/health")
    print("Ctrl-C stops it.", flush=True)
    logging.basicConfig(level=logging.WARNING, format="partnersim: %(levelname)s %(message)s")
    server = PartnerServer(make_config(app, host=args.host, port=port, http=args.http), app)
    # uvicorn re-raises the signal it caught once it has shut down; with these
    # handlers in place that ends the process quietly with exit status 0.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run(sockets=[sock])
    print("partnersim: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "check":
        return _check(args.files)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
