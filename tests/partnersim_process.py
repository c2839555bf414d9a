"""`partnersim` as a user starts it: a real process, its banner, a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTNERSIM = [sys.executable, "-m", "partnerkit.simulator.cli"]


@contextmanager
def partnersim(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`partnersim ARGS` from the repository root, unbuffered; killed if a test leaves it."""
    process = subprocess.Popen([*PARTNERSIM, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def banner(process: subprocess.Popen[str], lines: int) -> str:
    assert process.stdout is not None
    return "".join(process.stdout.readline() for _ in range(lines))


def stop_cleanly(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> None:
    """The signal stops it: exit 0 within a few seconds, no traceback."""
    process.send_signal(signum)
    started = time.monotonic()
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    _, stderr = process.communicate(timeout=5)
    assert "Traceback" not in stderr
