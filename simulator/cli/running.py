"""Serving in the foreground: one process or forked workers on one socket, their shared state."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from starlette.types import ASGIApp

from partnerkit.simulator.backends import StateBackend, StateUnavailable, default_prefix, open_state
from partnerkit.simulator.cli import common
from partnerkit.simulator.cli.options import FromEnvironment
from partnerkit.simulator.redaction import add_secret_names
from partnerkit.simulator.scenario import Scenario, ScenarioError
from partnerkit.simulator.server import PartnerServer, bind, make_config
from partnerkit.simulator.state import PartnerState

S = TypeVar("S", bound=PartnerState)


def run(app: ASGIApp, args: argparse.Namespace, banner: Callable[[str], list[str]], *,
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
        make = f", or make serve PORT={args.port + 1}" if args.command == "serve" else ""
        hint = (f"; something already listens there: stop it, or choose another port "
                f"(--port {args.port + 1}{make})" if exc.errno == errno.EADDRINUSE else "")
        print(f"partnersim: cannot bind {args.host}:{args.port}: {exc.strerror}{hint}",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="partnersim: %(levelname)s %(message)s")
    raise_fd_limit()
    add_secret_names(args.redact)
    if workers is not None and args.workers > 1:
        fork_workers(sock, args, workers, lambda: print(
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


def fork_workers(sock: socket.socket, args: argparse.Namespace,
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


def raise_fd_limit() -> None:
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


def freeze_startup_objects() -> None:
    """What exists at startup (modules, the data set, a cassette's recordings) lives
    as long as the process: keep the cyclic GC from scanning it again and again —
    each full pass over it was a pause of every request in flight."""
    gc.collect()
    gc.freeze()


def open_backend(args: argparse.Namespace, scenario: Scenario,
                  kind: str = "") -> StateBackend | int | None:
    """The state backend of --state (None: memory), or an exit status after one line."""
    if args.workers > 1 and args.state == "memory":
        print(f"partnersim: --workers {args.workers} needs shared state: add --state "
              "redis://HOST:PORT/DB (memory state is one process's; N workers would each "
              "keep their own tokens, budgets and journal)", file=sys.stderr)
        return common.EXIT_INVALID
    try:
        return open_state(args.state, args.state_prefix or default_prefix(kind + scenario.name),
                          journal_size=max(1, args.journal_size),
                          journal_bytes=args.journal_bytes)
    except (StateUnavailable, ValueError) as exc:
        source = "$PARTNERSIM_STATE" if isinstance(args.state, FromEnvironment) else "--state"
        print(f"partnersim: {source}: {exc}".replace("\n", " "), file=sys.stderr)
    except ImportError:
        print("partnersim: --state redis needs the redis extra: pip install 'partnerkit[redis]'",
              file=sys.stderr)
    return common.EXIT_INVALID


def worker_backend(args: argparse.Namespace, scenario: Scenario,
                    kind: str = "") -> StateBackend | None:
    """A forked worker's own connection to the shared state (it exits if it cannot)."""
    backend = open_backend(args, scenario, kind)
    if isinstance(backend, int):
        raise SystemExit(backend)
    return backend


def start_state(make: Callable[[], S], backend: StateBackend | None,
                scenario_file: Path | None) -> S | int:
    """The parent process's state from `make()`, begun afresh on shared state; or the
    exit status after one line (a fault the state refuses, a backend that fails)."""
    try:
        state = make()
    except ScenarioError as exc:
        common.print_scenario_problems(exc, scenario_file)
        return common.EXIT_INVALID
    if (failed := fresh_start(state, backend)) is not None:
        return failed
    return state


def fresh_start(state: PartnerState, backend: StateBackend | None) -> int | None:
    """On shared state every start begins afresh (this scenario, budgets, journal);
    an exit status after one line when the backend fails."""
    if backend is None:
        return None
    try:
        state.reset()
    except StateUnavailable as exc:
        print(f"partnersim: --state: {exc}", file=sys.stderr)
        return common.EXIT_INVALID
    return None
