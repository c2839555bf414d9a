"""The README's section "Faults in front of a real partner" runs as written:
the shell session (on free ports instead of 8090/8093) and the Python example."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "README.md").read_text().split("## Faults in front of a real partner")[1] \
    .split("\n## ")[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.skipif(shutil.which("curl") is None, reason="the session uses curl")
def test_the_shell_session_runs_as_written(tmp_path: Path) -> None:
    session = re.search(r"```sh\n(.*?)```", SECTION, flags=re.DOTALL)
    assert session is not None
    upstream, proxy = _free_port(), _free_port()
    script = session.group(1).replace("8090", str(upstream)).replace("8093", str(proxy))
    assert script.count("\nwait_for http://") == 2  # the README waits for each server itself
    bin_dir = Path(sys.executable).parent
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"
                           + script], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120, check=False)
    assert "429 200 503 503 200" in done.stdout, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("R3: GET /v1/orders/ORD-000001: came ") for line in lines)
    assert any(line.startswith("R4: GET /v1/orders/ORD-000002: 2 retries ") for line in lines)
    assert lines[-1] == "5 request(s) in 2 operation(s): 2 violation(s) of R3, R4"
    assert (tmp_path / ".partnerkit" / "sandbox.yaml").read_text().count('"request"') == 3


def test_the_python_example_runs_as_written() -> None:
    example = next(block for block in re.findall(r"```python\n(.*?)```", SECTION,
                                                 flags=re.DOTALL) if "FaultProxy(" in block)
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102 - the README's own example
