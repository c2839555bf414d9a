"""`partnersim verdicts`: judge a journal (a file or a running partner) by the contracts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from partnerkit.simulator.cli import common
from partnerkit.simulator.journal_verdicts import check_entries, judge_journal, judged_operations
from partnerkit.simulator.report import build as build_report
from partnerkit.simulator.report import write as write_report


def main(args: argparse.Namespace) -> int:
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
        return common.EXIT_INVALID
    except OSError as exc:
        print(f"partnersim: {source}: {exc.strerror or exc}", file=sys.stderr)
        return common.EXIT_INVALID
    except ValueError as exc:  # JSON errors, a bad journal, bad settings
        text = str(exc).splitlines()[0]
        print(f"partnersim: {text if text.startswith(source) else f'{source}: {text}'}",
              file=sys.stderr)
        return common.EXIT_INVALID
    if verdict.operations == 0:  # a CI run whose client never reached us must not pass
        print(f"partnersim: {source}: no request to judge in the journal (was the client "
              "pointed at this partner, and the journal not cleared since?)", file=sys.stderr)
        return common.EXIT_INVALID
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
            return common.EXIT_INVALID
        print(f"contract report: {args.report / 'contracts.html'} (and contracts.json)")
    return 0 if verdict.passed else 1
