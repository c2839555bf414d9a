"""`partnersim record`: a recording proxy writing a VCR.py cassette (and the
cassette opening that `proxy --out` and `import-har` share)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from partnerkit.simulator.cassette import CassetteError, CassetteWriter
from partnerkit.simulator.cli import common, running
from partnerkit.simulator.recorder import RecorderApp
from partnerkit.simulator.upstream import BadUpstream, check_upstream


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CassetteError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None


def open_cassette(out: Path, append: bool | None) -> CassetteWriter | int:
    """A writer for `out`, or the exit status after saying why there is none.
    `append` None: the command has no --append (an existing `out` is refused)."""
    if out.exists() and not append:
        hint = "pass --append to add to it, or " if append is not None else ""
        print(f"partnersim: {out} exists: {hint}choose another --out", file=sys.stderr)
        return common.EXIT_INVALID
    if not out.parent.is_dir() and any(parent.is_file() for parent in out.parents):
        print(f"partnersim: cannot write {out}: a folder on its path is a file",
              file=sys.stderr)
        return common.EXIT_INVALID
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return CassetteWriter(out, append=bool(append))
    except CassetteError as exc:
        print(f"partnersim: cannot append to {out}:", file=sys.stderr)
        common.print_problems(exc.source, exc.problems)
        return common.EXIT_INVALID
    except OSError as exc:
        print(f"partnersim: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def bad_upstream(url: str) -> bool:
    try:
        check_upstream(url)
    except BadUpstream as exc:
        print(f"partnersim: {exc}", file=sys.stderr)
        return True
    return False


def main(args: argparse.Namespace) -> int:
    if common.refuse_remote(args) or bad_upstream(args.upstream):
        return common.EXIT_INVALID
    out: Path = args.out
    writer = open_cassette(out, args.append)
    if isinstance(writer, int):
        return writer
    app = RecorderApp(args.upstream, writer, uri_base=args.uri_base, timeout_s=args.timeout,
                      stable=args.stable)
    try:
        return running.run(app, args, lambda url: [
            f"partnersim: recording {args.upstream} into {out} "
            f"({writer.count} interactions so far)",
            f"  url:           {url}   (point the client here)",
            "  secrets:       written as <redacted>",
            f"  health:        {url}/__sim/health",
        ], aclose=app.aclose,
            farewell=lambda: f"partnersim: stopped; {writer.count} interactions in {out}")
    finally:
        writer.close()
