"""`partnersim`: run the fake partner, replay or record traffic, check a scenario file."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
from starlette.types import ASGIApp

import partnerkit
from partnerkit.simulator.app import create_app, create_proxy_app, create_replay_app
from partnerkit.simulator.backends import StateBackend, StateUnavailable, default_prefix, open_state
from partnerkit.simulator.cassette import CassetteError, CassetteWriter, redact_interaction
from partnerkit.simulator.formats import read_har
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.journal_verdicts import check_entries, judge_journal, judged_operations
from partnerkit.simulator.protocols import HEAD_TIMEOUT_S
from partnerkit.simulator.proxy import ProxyState
from partnerkit.simulator.recorder import RecorderApp
from partnerkit.simulator.redaction import add_secret_names
from partnerkit.simulator.replay import (
    MAX_PACE,
    MISS_STATUS,
    MissAnswer,
    RecordingIndex,
    ReplayState,
)
from partnerkit.simulator.report import build as build_report
from partnerkit.simulator.report import write as write_report
from partnerkit.simulator.scenario import (
    Scenario,
    ScenarioError,
    empty_scenario,
    load_scenario_file,
)
from partnerkit.simulator.server import (
    PartnerServer,
    bind,
    coerce_scenario,
    is_loopback,
    make_config,
)
from partnerkit.simulator.state import PartnerState
from partnerkit.simulator.upstream import BadUpstream, CassetteTee, Upstream, check_upstream

EXIT_INVALID = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="partnersim",
        description="A scriptable fake of OrderOps' partner API: latency, 429s, 5xx, malformed "
                    "JSON, schema and cursor drift, expired tokens and dropped connections.",
    )
    parser.add_argument("--version", action="version",
                        version=f"partnersim (partnerkit) {partnerkit.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the fake partner",
        description="Run the fake partner until Ctrl-C or SIGTERM. It prints its URL and the "
                    "client credentials; the admin API is under /__sim/.",
    )
    _server_options(serve)
    serve.add_argument("--scenario", type=Path, metavar="FILE",
                       help="scenario file (YAML or JSON); default: a well-behaved partner")
    serve.add_argument("--seed", type=int, help="override the scenario's seed")
    _partner_options(serve)
    _state_options(serve)

    replay = commands.add_parser(
        "replay", help="serve the interactions of a VCR.py cassette",
        description="Serve a VCR.py cassette as a fake partner. Requests match on method, path "
                    "and query (in any order), never on headers or host; identical requests get "
                    "their recordings in recorded order, then the last repeats. Anything else "
                    "is a miss: 501 no_recording (header X-Partnersim-Miss) naming the closest "
                    "recorded requests, counted in /__sim/health and the journal. --faults "
                    "overlays a scenario's faults; a request a fault answers uses no recording.",
    )
    replay.add_argument("cassette", type=Path, metavar="CASSETTE",
                        help="VCR.py cassette (YAML or VCR.py's JSON), or a HAR 1.2 file")
    replay.add_argument("--faults", type=Path, metavar="SCENARIO",
                        help="scenario whose faults overlay the recorded answers")
    replay.add_argument("--seed", type=int, help="override the fault overlay's seed")
    _state_options(replay)
    replay.add_argument("--match-body", action="store_true",
                        help="also match on the request body")
    replay.add_argument("--miss-status", type=int, default=MISS_STATUS, metavar="CODE",
                        help=f"status of a request with no recording, 400-599 (default "
                             f"{MISS_STATUS}: no client reads it as a partner's answer)")
    replay.add_argument("--miss-body", type=Path, metavar="FILE",
                        help="send this file's bytes as a miss's body instead of the JSON "
                             "naming the closest recordings")
    replay.add_argument("--recorded-latency", type=float, nargs="?", const=1.0, default=None,
                        metavar="FACTOR",
                        help="serve each answer after its recorded duration times FACTOR "
                             "(default 1; write --recorded-latency=2), through the same delay "
                             "as scenario latency; answers recorded without one are immediate")
    _server_options(replay)
    _partner_options(replay, credentials=False)

    import_har = commands.add_parser(
        "import-har", help="turn a HAR 1.2 file into a VCR.py cassette (redacted like record)",
        description="Write the entries of a HAR file (browsers, mitmproxy, Charles, Postman) "
                    "as a VCR.py cassette, secrets as <redacted> as `record` writes them and each "
                    "entry's time kept as duration_ms. Entries that got no answer (status 0) are "
                    "skipped and named; any entry that cannot be served refuses the file.",
    )
    import_har.add_argument("har", type=Path, metavar="FILE.har", help="HAR 1.2 file")
    import_har.add_argument("--out", required=True, type=Path, metavar="CASSETTE",
                            help="cassette to write (refused if it exists)")

    record = commands.add_parser(
        "record", help="a recording proxy that writes a VCR.py cassette",
        description="Forward every request to --upstream and append each completed exchange "
                    "to --out (a VCR.py cassette) before answering, with secrets written as "
                    "<redacted>: Authorization, cookies, client_secret, access/refresh tokens.",
    )
    record.add_argument("--upstream", required=True, metavar="URL",
                        help="the partner to forward to, e.g. https://partner.example.com")
    record.add_argument("--out", required=True, type=Path, metavar="CASSETTE",
                        help="cassette to write (refused if it exists, unless --append)")
    record.add_argument("--append", action="store_true",
                        help="keep the interactions already in --out and add to them")
    record.add_argument("--uri-base", metavar="URL",
                        help="origin written into the cassette (default: --upstream)")
    record.add_argument("--stable", action="store_true",
                        help="drop Date and pin X-Request-Id, so re-recording unchanged traffic "
                             "gives an unchanged file")
    record.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the upstream (default 30)")
    _server_options(record)

    proxy = commands.add_parser(
        "proxy", help="a fault-injecting reverse proxy in front of a real partner",
        description="Forward every request to --upstream (and only there), with a scenario's "
                    "faults in front of it: faults that answer by themselves (status, an empty "
                    "rate-limit bucket, reset, hang, expire_token) never reach the upstream; "
                    "the others act on its real answers. --out tees the clean answers into a "
                    "VCR.py cassette, secrets written as <redacted>. The admin API is under "
                    "/__sim/ as in serve.",
    )
    proxy.add_argument("--upstream", required=True, metavar="URL",
                       help="the partner to forward to, e.g. https://sandbox.partner.example")
    proxy.add_argument("--faults", type=Path, metavar="SCENARIO",
                       help="scenario whose faults act on the upstream's traffic (YAML or JSON)")
    proxy.add_argument("--seed", type=int, help="override the scenario's seed")
    _state_options(proxy)
    proxy.add_argument("--out", type=Path, metavar="CASSETTE",
                       help="also record the clean answers into this cassette (refused if it "
                            "exists, unless --append)")
    proxy.add_argument("--append", action="store_true",
                       help="keep the interactions already in --out and add to them")
    proxy.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long to wait for the upstream (default 30); then 504")
    _server_options(proxy)
    _partner_options(proxy, credentials=False)

    verdicts = commands.add_parser(
        "verdicts", help="judge any client by a journal (a running partnersim's, or a file)",
        description="Judge the client behind a journal on generic contracts, from the journal "
                    "alone: no retry of a non-retryable answer (R1), a 401 retried once after a "
                    "token refresh (A1), bounded attempts (R2), Retry-After honoured (R3), "
                    "backoff after a failure (R4), the same Idempotency-Key on every retry of a "
                    "POST (R5), no request while a rate-limit bucket says wait (R6). Exit 0 when "
                    "all hold, 1 with violations, 2 on bad input or an empty journal.",
    )
    source = verdicts.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", metavar="URL",
                        help="a running partnersim (serve, replay or proxy): its journal")
    source.add_argument("journal", nargs="?", type=Path, metavar="JOURNAL.json",
                        help="a journal saved from GET /__sim/journal")
    verdicts.add_argument("--format", choices=("text", "json"), default="text")
    verdicts.add_argument("--report", type=Path, metavar="DIR",
                          help="also write the contract report there: contracts.json (the "
                               "shape pytest --partner-report writes) and contracts.html")
    verdicts.add_argument("--max-attempts", type=int, default=4, metavar="N",
                          help="attempts an operation may take (default 4)")
    verdicts.add_argument("--min-backoff-ms", type=float, default=5.0, metavar="M",
                          help="the least wait after a failure that counts as a backoff "
                               "(default 5)")
    verdicts.add_argument("--admin-token", metavar="TOKEN",
                          help="X-Admin-Token for the admin API at --url")

    check = commands.add_parser(
        "check", help="validate scenario files",
        description="Validate scenario files. Exit 0 when all are valid, 2 with one line per "
                    "problem (FILE:LINE: json.path: message) otherwise.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; others need --allow-remote)")
    parser.add_argument("--port", type=_port, default=8080,
                        help="port (default 8080; 0 = any free)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding to a non-loopback address")
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools",
                        help="HTTP stack (default httptools: the fast one)")
    parser.add_argument("--redact", action="append", default=[], metavar="NAME",
                        help="also treat this header, query, form or JSON field name as a "
                             "secret (repeatable; the defaults are in the README)")
    parser.add_argument("--head-timeout", type=_positive_seconds, default=HEAD_TIMEOUT_S,
                        metavar="SECONDS",
                        help=f"close a connection whose request line and headers take longer "
                             f"(default {HEAD_TIMEOUT_S:g}; silent and slowloris clients)")


def _state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_workers, default=1, metavar="N",
                        help="worker processes sharing one port (N > 1 needs --state redis://...)")
    parser.add_argument("--state", default=os.environ.get("PARTNERSIM_STATE", "memory"),
                        metavar="memory|redis://HOST:PORT/DB|unix:///PATH",
                        help="where tokens, budgets, buckets, the scenario and the journal live "
                             "(default: memory, or $PARTNERSIM_STATE); a Redis is shared by "
                             "every worker (pip install 'partnerkit[redis]')")
    parser.add_argument("--state-prefix", metavar="PREFIX",
                        help="key prefix in the shared state, so two fake partners can share "
                             "one Redis (default: partnersim:<scenario name>:)")


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of workers 1-256")
    return int(text)


def _open_backend(args: argparse.Namespace, scenario: Scenario,
                  kind: str = "") -> StateBackend | int | None:
    """The state backend of --state (None: memory), or an exit status after one line."""
    if args.workers > 1 and args.state == "memory":
        print(f"partnersim: --workers {args.workers} needs shared state: add --state "
              "redis://HOST:PORT/DB (memory state is one process's; N workers would each "
              "keep their own tokens, budgets and journal)", file=sys.stderr)
        return EXIT_INVALID
    try:
        return open_state(args.state, args.state_prefix or default_prefix(kind + scenario.name),
                          journal_size=max(1, args.journal_size),
                          journal_bytes=args.journal_bytes)
    except (StateUnavailable, ValueError) as exc:
        print(f"partnersim: --state: {exc}".replace("\n", " "), file=sys.stderr)
    except ImportError:
        print("partnersim: --state redis needs the redis extra: pip install 'partnerkit[redis]'",
              file=sys.stderr)
    return EXIT_INVALID


def _worker_backend(args: argparse.Namespace, scenario: Scenario,
                    kind: str = "") -> StateBackend | None:
    """A forked worker's own connection to the shared state (it exits if it cannot)."""
    backend = _open_backend(args, scenario, kind)
    if isinstance(backend, int):
        raise SystemExit(backend)
    return backend


def _fresh_start(state: PartnerState, backend: StateBackend | None) -> int | None:
    """On shared state every start begins afresh (this scenario, budgets, journal);
    an exit status after one line when the backend fails."""
    if backend is None:
        return None
    try:
        state.reset()
    except StateUnavailable as exc:
        print(f"partnersim: --state: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return None


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _journal_bytes(text: str) -> int:
    value = int(text)
    if value < 65536:
        raise argparse.ArgumentTypeError(f"{value}: expected at least 65536 bytes")
    return value


def _admin_token(text: str) -> str:
    if not text.strip():  # an empty token would leave the admin API open
        raise argparse.ArgumentTypeError("an empty admin token protects nothing")
    return text


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text}: expected seconds between 0 and 86400")
    return value


def _partner_options(parser: argparse.ArgumentParser, *, credentials: bool = True) -> None:
    parser.add_argument("--journal-size", type=int, default=10_000, metavar="N",
                        help="journal ring buffer size (default 10000)")
    parser.add_argument("--journal-bytes", type=_journal_bytes, default=MAX_JOURNAL_BYTES,
                        metavar="BYTES",
                        help=f"most the journal holds, estimated; the oldest entries leave "
                             f"first (default {MAX_JOURNAL_BYTES})")
    parser.add_argument("--admin-token", type=_admin_token, metavar="TOKEN",
                        help="require this X-Admin-Token on the /__sim/ admin API "
                             "(the dashboard at /__sim/ui asks for it)")
    if credentials:
        parser.add_argument("--client-id", default="orderops", help="accepted client_id")
        parser.add_argument("--client-secret", default="orderops-secret",
                            help="accepted client_secret")


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


def _refuse_remote(args: argparse.Namespace) -> bool:
    if is_loopback(args.host) or args.allow_remote:
        return False
    print(f"partnersim: refusing to bind {args.host}: partnersim's servers and admin API have "
          "no real security; pass --allow-remote (and --admin-token) to do it anyway",
          file=sys.stderr)
    return True


def _print_problems(source: str, problems: Sequence[object]) -> None:
    for problem in problems:
        render = getattr(problem, "render", None)
        print(render(source) if render else f"{source}: {problem}", file=sys.stderr)


def _run(app: ASGIApp, args: argparse.Namespace, banner: Callable[[str], list[str]], *,
         release: Callable[[], None] = lambda: None,
         aclose: Callable[[], Awaitable[None]] | None = None,
         farewell: Callable[[], str] = lambda: "partnersim: stopped",
         workers: Callable[[], tuple[ASGIApp, Callable[[], None]]] | None = None) -> int:
    """Serve `app` in the foreground until SIGINT/SIGTERM, say `farewell()`, exit 0.
    With `workers`, fork args.workers processes on one socket, each serving the app
    `workers()` builds there (its own connection to the shared state)."""
    try:
        sock, url = bind(args.host, args.port)
    except OSError as exc:
        hint = (f"; something already listens there: stop it, or choose another port "
                f"(--port {args.port + 1}, or make serve PORT={args.port + 1})"
                if exc.errno == errno.EADDRINUSE else "")
        print(f"partnersim: cannot bind {args.host}:{args.port}: {exc.strerror}{hint}",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="partnersim: %(levelname)s %(message)s")
    _raise_fd_limit()
    add_secret_names(args.redact)
    if workers is not None and args.workers > 1:
        _fork_workers(sock, args, workers, lambda: print(
            "\n".join([*banner(url), "Ctrl-C stops it."]), flush=True))
        print(farewell(), flush=True)
        return 0
    server = PartnerServer(make_config(app, host=args.host, port=sock.getsockname()[1],
                                       http=args.http, head_timeout_s=args.head_timeout),
                           release, aclose)

    def stop(signum: int, frame: object) -> None:
        # Before uvicorn takes the signals over (a SIGTERM right after the banner used
        # to be swallowed here, leaving the server running), and after it hands them
        # back (it re-raises what it caught): either way, stop and exit 0.
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("\n".join(banner(url)))  # only now: a script may signal as soon as it reads this
    print("Ctrl-C stops it.", flush=True)
    server.run(sockets=[sock])
    print(farewell(), flush=True)
    return 0


def _fork_workers(sock: socket.socket, args: argparse.Namespace,
                  make: Callable[[], tuple[ASGIApp, Callable[[], None]]],
                  announce: Callable[[], None]) -> None:
    """args.workers processes accepting on `sock`; SIGINT/SIGTERM here stop them all.
    `announce()` (the banner) once they are forked and the signals are ours."""
    children: list[int] = []
    stopping: list[bool] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(True)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own state connection, app and event loop
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # uvicorn takes them over in run()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            status = 0
            try:
                app, release = make()
                server = PartnerServer(make_config(app, host=args.host,
                                                   port=sock.getsockname()[1], http=args.http,
                                                   head_timeout_s=args.head_timeout), release)
                server.run(sockets=[sock])
            except BaseException:
                logging.exception("worker %d failed", os.getpid())
                status = 1
            finally:
                os._exit(status)
        children.append(pid)
    if stopping:
        stop(signal.SIGTERM, None)
    announce()
    for child in children:
        os.waitpid(child, 0)


def _raise_fd_limit() -> None:
    """Each connection is a file descriptor: a soft limit of 1,024 (a common default) let
    ~1,000 idle sockets lock everyone else out until the head timeout. The hard limit
    is the system's own bound; the soft one is ours to raise."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else max(soft, 65536), hard))


def _freeze_startup_objects() -> None:
    """What exists at startup (modules, the data set, a cassette's recordings) lives
    as long as the process: keep the cyclic GC from scanning it again and again —
    each full pass over it was a pause of every request in flight."""
    gc.collect()
    gc.freeze()


def _serve(args: argparse.Namespace) -> int:
    if _refuse_remote(args):
        return EXIT_INVALID
    try:
        scenario = _load(args.scenario, args.seed)
    except ScenarioError as exc:
        _print_problems(exc.source, exc.problems)
        return EXIT_INVALID
    backend = _open_backend(args, scenario)
    if isinstance(backend, int):
        return backend

    def make(backend: StateBackend | None) -> tuple[PartnerState, ASGIApp]:
        state = PartnerState(scenario, journal_size=max(1, args.journal_size),
                             journal_bytes=args.journal_bytes, client_id=args.client_id,
                             client_secret=args.client_secret, backend=backend)
        return state, create_app(state=state, admin_token=args.admin_token)

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine, app = make(_worker_backend(args, scenario))
        return app, mine.waits.release_all

    state, app = make(backend)
    if (failed := _fresh_start(state, backend)) is not None:
        return failed
    _freeze_startup_objects()
    shared = "" if backend is None else f", {args.workers} worker(s) sharing {args.state}"
    return _run(app, args, lambda url: [
        f"partnersim: fake partner '{scenario.name}' (seed {scenario.seed}, "
        f"{len(state.store)} orders, {len(scenario.rules)} rule(s){shared})",
        f"  url:           {url}",
        f"  client_id:     {args.client_id}",
        f"  client_secret: {args.client_secret}",
        f"  admin:         {url}/__sim/health",
        f"  dashboard:     {url}/__sim/ui",
    ], release=state.waits.release_all, workers=worker)


def _miss_answer(status: int, body_file: Path | None) -> MissAnswer | None:
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


def _replay(args: argparse.Namespace) -> int:
    if _refuse_remote(args):
        return EXIT_INVALID
    started = time.perf_counter()
    try:
        index, skipped = RecordingIndex.from_file(args.cassette, match_body=args.match_body)
    except CassetteError as exc:
        print(f"partnersim: cannot replay {args.cassette}:", file=sys.stderr)
        _print_problems(exc.source, exc.problems)
        return EXIT_INVALID
    _print_problems(str(args.cassette), skipped)
    miss = _miss_answer(args.miss_status, args.miss_body)
    if miss is None:
        return EXIT_INVALID
    if args.recorded_latency is not None and not 0 <= args.recorded_latency <= MAX_PACE:
        print(f"partnersim: --recorded-latency {args.recorded_latency}: a factor from 0 to "
              f"{MAX_PACE:g}", file=sys.stderr)
        return EXIT_INVALID
    try:
        faults = coerce_scenario(args.faults, args.seed)
    except ScenarioError as exc:
        _print_problems(str(args.faults) if args.faults else exc.source, exc.problems)
        return EXIT_INVALID
    kind = f"replay-{args.cassette.stem}-"
    backend = _open_backend(args, faults or empty_scenario(), kind)
    if isinstance(backend, int):
        return backend

    def make(recordings: RecordingIndex, backend: StateBackend | None) -> ReplayState:
        return ReplayState(recordings, faults, cassette=str(args.cassette),
                           journal_size=max(1, args.journal_size),
                           journal_bytes=args.journal_bytes, miss=miss,
                           recorded_latency=args.recorded_latency, backend=backend)

    try:
        state = make(index, backend)
    except ScenarioError as exc:
        _print_problems(str(args.faults) if args.faults else exc.source, exc.problems)
        return EXIT_INVALID
    if (failed := _fresh_start(state, backend)) is not None:
        return failed

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine = make(RecordingIndex.from_file(args.cassette, match_body=args.match_body)[0],
                    _worker_backend(args, faults or empty_scenario(), kind))
        return create_replay_app(mine, admin_token=args.admin_token), mine.waits.release_all
    loaded_s = time.perf_counter() - started
    _freeze_startup_objects()  # with 100,000 recordings a full GC pass took 0.5 s
    app = create_replay_app(state, admin_token=args.admin_token)
    overlay = (f"fault overlay '{state.scenario.name}' ({len(state.scenario.rules)} rule(s))"
               if args.faults else "no fault overlay")
    return _run(app, args, lambda url: [
        f"partnersim: replaying {args.cassette} ({len(index)} interactions, "
        f"{index.stats()['distinct_requests']} distinct requests, loaded in {loaded_s:.2f} s; "
        f"{overlay})",
        f"  url:           {url}",
        "  credentials:   any (recorded tokens are redacted; tokens are not checked)",
        f"  matching:      method, path, query{', body' if args.match_body else ''}",
        f"  misses:        {miss.status} with X-Partnersim-Miss (counted in /__sim/health)",
        f"  pace:          {_pace(args.recorded_latency)}",
        f"  admin:         {url}/__sim/health",
        f"  dashboard:     {url}/__sim/ui",
    ], release=state.waits.release_all, workers=worker)


def _pace(factor: float | None) -> str:
    if factor is None:
        return "immediate (--recorded-latency to serve the recorded durations)"
    return f"each answer after its recorded duration x {factor:g}"


def _import_har(args: argparse.Namespace) -> int:
    try:
        interactions, skipped = read_har(_read(args.har), str(args.har))
    except CassetteError as exc:
        print(f"partnersim: cannot import {args.har}:", file=sys.stderr)
        _print_problems(exc.source, exc.problems)
        return EXIT_INVALID
    _print_problems(str(args.har), skipped)
    writer = _open_cassette(args.out, append=False)
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CassetteError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None


def _open_cassette(out: Path, append: bool) -> CassetteWriter | int:
    """A writer for `out`, or the exit status after saying why there is none."""
    if out.exists() and not append:
        print(f"partnersim: {out} exists: pass --append to add to it, or choose another --out",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return CassetteWriter(out, append=append)
    except CassetteError as exc:
        print(f"partnersim: cannot append to {out}:", file=sys.stderr)
        _print_problems(exc.source, exc.problems)
        return EXIT_INVALID
    except OSError as exc:
        print(f"partnersim: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _bad_upstream(url: str) -> bool:
    try:
        check_upstream(url)
    except BadUpstream as exc:
        print(f"partnersim: {exc}", file=sys.stderr)
        return True
    return False


def _record(args: argparse.Namespace) -> int:
    if _refuse_remote(args) or _bad_upstream(args.upstream):
        return EXIT_INVALID
    out: Path = args.out
    writer = _open_cassette(out, args.append)
    if isinstance(writer, int):
        return writer
    app = RecorderApp(args.upstream, writer, uri_base=args.uri_base, timeout_s=args.timeout,
                      stable=args.stable)
    try:
        return _run(app, args, lambda url: [
            f"partnersim: recording {args.upstream} into {out} "
            f"({writer.count} interactions so far)",
            f"  url:           {url}   (point the client here)",
            "  secrets:       written as <redacted>",
            f"  health:        {url}/__sim/health",
        ], aclose=app.aclose,
            farewell=lambda: f"partnersim: stopped; {writer.count} interactions in {out}")
    finally:
        writer.close()


def _proxy(args: argparse.Namespace) -> int:
    if _refuse_remote(args) or _bad_upstream(args.upstream):
        return EXIT_INVALID
    if not args.timeout > 0:
        print(f"partnersim: --timeout {args.timeout}: must be more than 0 seconds",
              file=sys.stderr)
        return EXIT_INVALID
    if args.workers > 1 and args.out is not None:
        print("partnersim: --out records from one process: use --workers 1 to record",
              file=sys.stderr)
        return EXIT_INVALID
    upstream = Upstream(args.upstream, timeout_s=args.timeout, forwarded=True)
    try:
        scenario = _load(args.faults, args.seed)
    except ScenarioError as exc:
        _print_problems(str(args.faults) if args.faults else exc.source, exc.problems)
        return EXIT_INVALID
    backend = _open_backend(args, scenario, "proxy-")
    if isinstance(backend, int):
        return backend
    def make(upstream: Upstream, backend: StateBackend | None) -> ProxyState:
        return ProxyState(upstream, scenario, journal_size=max(1, args.journal_size),
                          journal_bytes=args.journal_bytes, backend=backend)

    try:
        state = make(upstream, backend)
    except ScenarioError as exc:
        _print_problems(str(args.faults) if args.faults else exc.source, exc.problems)
        return EXIT_INVALID
    if (failed := _fresh_start(state, backend)) is not None:
        return failed

    def worker() -> tuple[ASGIApp, Callable[[], None]]:
        mine = make(Upstream(args.upstream, timeout_s=args.timeout, forwarded=True),
                    _worker_backend(args, scenario, "proxy-"))
        return create_proxy_app(mine, admin_token=args.admin_token), mine.waits.release_all
    writer: CassetteWriter | None = None
    if args.out is not None:
        opened = _open_cassette(args.out, args.append)
        if isinstance(opened, int):
            return opened
        writer = opened
        state.tee = CassetteTee(writer, upstream.url)
    app = create_proxy_app(state, admin_token=args.admin_token)
    _freeze_startup_objects()
    recording = f"  recording:     clean answers into {args.out} (secrets as <redacted>)" \
        if args.out is not None else "  recording:     off (--out CASSETTE to record)"
    try:
        return _run(app, args, lambda url: [
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


def _verdicts(args: argparse.Namespace) -> int:
    source = args.url or str(args.journal)
    try:
        if args.url:
            headers = {"x-admin-token": args.admin_token} if args.admin_token else {}
            answer = httpx.get(args.url.rstrip("/") + "/__sim/journal", headers=headers,
                               timeout=30.0, trust_env=False)
            if answer.status_code != 200:
                raise ValueError(f"{source}: GET /__sim/journal answered {answer.status_code}")
            document = answer.json()
        else:
            document = json.loads(Path(args.journal).read_bytes())
        entries = check_entries(document, source)
        verdict = judge_journal(entries, max_attempts=args.max_attempts,
                                min_backoff_ms=args.min_backoff_ms)
    except httpx.HTTPError as exc:
        print(f"partnersim: {source}: cannot read the journal: {type(exc).__name__}",
              file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"partnersim: {source}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:  # JSON errors, a bad journal, bad settings
        text = str(exc).splitlines()[0]
        print(f"partnersim: {text if text.startswith(source) else f'{source}: {text}'}",
              file=sys.stderr)
        return EXIT_INVALID
    if verdict.operations == 0:  # a CI run whose client never reached us must not pass
        print(f"partnersim: {source}: no request to judge in the journal (was the client "
              "pointed at this partner, and the journal not cleared since?)", file=sys.stderr)
        return EXIT_INVALID
    if args.format == "json":
        print(json.dumps(verdict.as_json(), indent=2))
    else:
        print(verdict.render())
    if args.report is not None:
        try:
            write_report(args.report, build_report(judged_operations(verdict, source)))
        except OSError as exc:
            print(f"partnersim: cannot write the report to {args.report}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return EXIT_INVALID
        print(f"contract report: {args.report / 'contracts.html'} (and contracts.json)")
    return 0 if verdict.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve, "replay": _replay, "record": _record, "proxy": _proxy,
        "import-har": _import_har,
        "verdicts": _verdicts,
        "check": lambda args: _check(args.files),
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
