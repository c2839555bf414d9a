"""A real redis-server for the shared-state tests: a unix socket in a temp dir,
no persistence. Without the binary the tests skip with the reason; in CI
(CI=true) they fail instead, since there they must run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 5.0


class RedisServer:
    """One redis-server process on `socket`; stop() and start() again to lose it mid-run."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            reason = "redis-server not installed (apt-get install redis-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}: the shared-state tests must run in CI")
            pytest.skip(reason)
        self.binary = binary
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait(5)
        self.socket.unlink(missing_ok=True)
