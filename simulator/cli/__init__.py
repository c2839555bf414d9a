"""`partnersim`: run the fake partner, replay or record traffic, check a scenario file.

One module a command (serve, replay, record, proxy, verdicts); options, the
foreground server and what the commands share live beside them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from partnerkit.simulator.cli import proxy, record, replay, serve, verdicts
from partnerkit.simulator.cli.options import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": serve.main, "replay": replay.main, "record": record.main,
        "proxy": proxy.main, "import-har": replay.import_har, "verdicts": verdicts.main,
        "check": lambda args: serve.check(args.files),
    }
    return commands[args.command](args)
