"""The partnersim CLI: serve (banner, loopback-only, clean stop) and check."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from partnerkit.simulator.cli import main as partnersim_main
from tests.partnersim_process import PARTNERSIM, REPO, banner, partnersim, stop_cleanly


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PARTNERSIM, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


HELP_MENTIONS = {"serve": "--scenario", "replay": "--faults", "record": "--upstream",
                 "proxy": "--upstream", "verdicts": "--max-attempts", "check": "FILE:LINE"}


@pytest.mark.parametrize("command", ["", *HELP_MENTIONS])
def test_help_for_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """In process: argparse prints the help and exits 0 (one subprocess below proves
    the installed entry point runs at all)."""
    with pytest.raises(SystemExit) as done:
        partnersim_main([command, "--help"] if command else ["--help"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "usage: partnersim" in printed
    assert HELP_MENTIONS.get(command, "COMMAND") in printed


def test_the_entry_point_runs() -> None:
    result = _run("--version")
    assert result.returncode == 0 and result.stdout.startswith("partnersim (partnerkit) ")


def test_check_accepts_the_shipped_scenarios() -> None:
    files = sorted(str(path) for path in (REPO / "scenarios").glob("*.yaml"))
    assert files
    result = _run("check", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(files)


def test_check_lists_every_error_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - fault: {status: 99}\n  - fault: {disconnect: later}\n")
    result = _run("check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{bad}:2: rules[0].fault.status: must be between 400 and 599, got 99",
        f"{bad}:3: rules[1].fault.disconnect: 'later' is not one of: reset, mid_body, hang",
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"\x00\xff garbage", b"rules: [", b"[1, 2]", b""])
def test_check_never_prints_a_traceback(tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(content)
    result = _run("check", str(junk))
    assert result.returncode == 2
    assert re.match(rf"{re.escape(str(junk))}:\d+: ", result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [
    ["serve"], ["replay", "cassettes/production/orders-sync.yaml"],
    ["record", "--upstream", "http://127.0.0.1:9", "--out", "never-written.yaml"],
])
def test_every_server_refuses_a_non_loopback_address_without_a_flag(command: list[str]) -> None:
    result = _run(*command, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert not (REPO / "never-written.yaml").exists()


def test_serve_refuses_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{fault: {status: 600}}]\n")
    result = _run("serve", "--port", "0", "--scenario", str(bad))
    assert result.returncode == 2
    assert f"{bad}:1: rules[0].fault.status" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_url_and_credentials_and_stops_cleanly(stop: signal.Signals) -> None:
    with partnersim("serve", "--port", "0", "--scenario", "scenarios/default.yaml",
                    "--seed", "3") as process:
        text = banner(process, 7)
        url = re.search(r"url:\s+(http://127\.0\.0\.1:\d+)", text)
        assert url, text
        assert f"dashboard:     {url.group(1)}/__sim/ui" in text
        assert "orderops-secret" in text and "seed 3" in text
        health = httpx.get(f"{url.group(1)}/__sim/health", timeout=5).json()
        assert health["scenario"] == "default" and health["seed"] == 3
        stop_cleanly(process, stop)


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0"],
    ["replay", "cassettes/client/test_a_sync_pages_through_every_order_once.yaml", "--port", "0"],
    ["record", "--upstream", "http://127.0.0.1:9", "--out", "{tmp}/r.yaml", "--port", "0"],
])
def test_a_sigterm_right_after_the_banner_stops_it(command: list[str], tmp_path: Path) -> None:
    """A script that signals as soon as it reads 'Ctrl-C stops it.' once hung the
    server: the signal fell between partnersim's handler and uvicorn's."""
    for _ in range(3):
        with partnersim(*(part.replace("{tmp}", str(tmp_path)) for part in command)) as process:
            assert process.stdout is not None
            while "Ctrl-C" not in (line := process.stdout.readline()):
                assert line, process.stderr.read() if process.stderr else ""
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
