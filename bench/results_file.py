"""bench/results.md: how a run is headed (date, commit, machine, command) and appended."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def heading(title: str, command: str) -> str:
    """`## DATE — commit C: TITLE` and a line naming the machine and the command."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "unknown"
    return (f"## {dt.date.today().isoformat()} — commit {commit}: {title}\n\n"
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.python_implementation()} {platform.python_version()}, load average "
            f"{os.getloadavg()[0]:.1f} at the start; `{command}`.")


def publish(section: str, *, append: bool = True) -> None:
    """Print a run's section and, unless told not to, append it to results.md."""
    print(section)
    if append:
        with (BENCH / "results.md").open("a") as results:
            results.write("\n" + section.rstrip("\n") + "\n")
