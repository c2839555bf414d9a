"""Command-line options of `partnersim`: the parser, shared option groups and their checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import partnerkit
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.protocols import HEAD_TIMEOUT_S
from partnerkit.simulator.replay import MISS_STATUS


def build_parser() -> argparse.ArgumentParser:
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
    server_options(serve)
    serve.add_argument("--scenario", type=Path, metavar="FILE",
                       help="scenario file (YAML or JSON); default: a well-behaved partner")
    serve.add_argument("--seed", type=int, help="override the scenario's seed")
    partner_options(serve)
    state_options(serve)

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
    overlay_options(replay, "overlay the recorded answers")
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
    server_options(replay)
    partner_options(replay, credentials=False)

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
    server_options(record)

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
    overlay_options(proxy, "act on the upstream's traffic")
    proxy.add_argument("--out", type=Path, metavar="CASSETTE",
                       help="also record the clean answers into this cassette (refused if it "
                            "exists, unless --append)")
    proxy.add_argument("--append", action="store_true",
                       help="keep the interactions already in --out and add to them")
    proxy.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long to wait for the upstream (default 30); then 504")
    server_options(proxy)
    partner_options(proxy, credentials=False)

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


def server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; others need --allow-remote)")
    parser.add_argument("--port", type=port, default=8080,
                        help="port (default 8080; 0 = any free)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding to a non-loopback address")
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools",
                        help="HTTP stack (default httptools: the fast one)")
    parser.add_argument("--redact", action="append", default=[], metavar="NAME",
                        help="also treat this header, query, form or JSON field name as a "
                             "secret (repeatable; the defaults are in the README)")
    parser.add_argument("--head-timeout", type=positive_seconds, default=HEAD_TIMEOUT_S,
                        metavar="SECONDS",
                        help=f"close a connection whose request line and headers take longer "
                             f"(default {HEAD_TIMEOUT_S:g}; silent and slowloris clients)")


def overlay_options(parser: argparse.ArgumentParser, what_faults_do: str) -> None:
    """--faults, --seed and the state options of the commands whose faults overlay
    answers that are not the fake partner's own (replay, proxy)."""
    parser.add_argument("--faults", type=Path, metavar="SCENARIO",
                        help=f"scenario (YAML or JSON) whose faults {what_faults_do}")
    parser.add_argument("--seed", type=int, help="override the fault scenario's seed")
    state_options(parser)


class FromEnvironment(str):
    """--state's default, from $PARTNERSIM_STATE: an error names the variable, not --state."""


def state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=workers, default=1, metavar="N",
                        help="worker processes sharing one port (N > 1 needs --state redis://...)")
    state = FromEnvironment(os.environ.get("PARTNERSIM_STATE", "memory"))
    parser.add_argument("--state", default=state,
                        metavar="memory|redis://HOST:PORT/DB|unix:///PATH",
                        help="where tokens, budgets, buckets, the scenario and the journal live "
                             "(default: memory, or $PARTNERSIM_STATE); a Redis is shared by "
                             "every worker (pip install 'partnerkit[redis]')")
    parser.add_argument("--state-prefix", metavar="PREFIX",
                        help="key prefix in the shared state, so two fake partners can share "
                             "one Redis (default: partnersim:<scenario name>:)")


def workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of workers 1-256")
    return int(text)


def port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def journal_bytes(text: str) -> int:
    value = int(text)
    if value < 65536:
        raise argparse.ArgumentTypeError(f"{value}: expected at least 65536 bytes")
    return value


def admin_token(text: str) -> str:
    if not text.strip():  # an empty token would leave the admin API open
        raise argparse.ArgumentTypeError("an empty admin token protects nothing")
    return text


def positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text}: expected seconds above 0, at most 86400")
    return value


def partner_options(parser: argparse.ArgumentParser, *, credentials: bool = True) -> None:
    parser.add_argument("--journal-size", type=int, default=10_000, metavar="N",
                        help="journal ring buffer size (default 10000)")
    parser.add_argument("--journal-bytes", type=journal_bytes, default=MAX_JOURNAL_BYTES,
                        metavar="BYTES",
                        help=f"most the journal holds, estimated; the oldest entries leave "
                             f"first (default {MAX_JOURNAL_BYTES})")
    parser.add_argument("--admin-token", type=admin_token, metavar="TOKEN",
                        help="require this X-Admin-Token on the /__sim/ admin API "
                             "(the dashboard at /__sim/ui asks for it)")
    if credentials:
        parser.add_argument("--client-id", default="orderops", help="accepted client_id")
        parser.add_argument("--client-secret", default="orderops-secret",
                            help="accepted client_secret")
