"""The README's tour is a tested promise: its commands, run against a real
`partnersim serve`, print what the README shows (`...` stands for the rest)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from partnerkit.simulator import FakePartner

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TOUR = README[README.index("## A one-minute tour"):README.index("## The partner API (v1)")]
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", TOUR, flags=re.DOTALL)
BIN = Path(sys.executable).parent


def expected_lines(block: str) -> list[str]:
    """The output a block shows: its `# ` lines; a JSON answer the README wraps
    over several lines is one line of output."""
    lines: list[str] = []
    for line in block.splitlines():
        if not line.startswith("#"):
            continue
        text = line[2:]
        if lines and _unclosed(lines[-1]):
            lines[-1] += text.strip()
        else:
            lines.append(text)
    return lines


def _unclosed(line: str) -> bool:
    opened = line.count("{") + line.count("[")
    return line.startswith("{") and opened > line.count("}") + line.count("]")


def commands(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.startswith("#"))


def matches(pattern: str, actual: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, actual) is not None


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    process = subprocess.Popen(
        [str(BIN / "partnersim"), "serve", "--port", "0", "--scenario", "scenarios/default.yaml"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    banner = [process.stdout.readline().rstrip("\n") for _ in range(7)]
    port = re.search(r"127\.0\.0\.1:(\d+)", "\n".join(banner))
    assert port, banner
    try:
        yield port.group(1), banner
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_tour_has_its_blocks() -> None:
    assert SH_BLOCKS[0].startswith("make serve")
    assert len(SH_BLOCKS) == 5


def test_make_serve_prints_the_banner_the_readme_shows(served: tuple[str, list[str]]) -> None:
    port, banner = served
    assert banner == [line.replace("8080", port) for line in expected_lines(SH_BLOCKS[0])]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour uses curl")
def test_every_tour_command_prints_what_the_readme_shows(served: tuple[str, list[str]]) -> None:
    port, _ = served
    marker = "@@ next block @@"
    script = f"\necho '{marker}'\n".join(commands(block).replace("8080", port)
                                         for block in SH_BLOCKS[1:])
    run = subprocess.run(["bash", "-eu", "-c", script], cwd=ROOT, text=True,
                         capture_output=True, timeout=60,
                         env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stderr
    outputs = run.stdout.split(f"{marker}\n")
    assert len(outputs) == len(SH_BLOCKS) - 1
    for block, output in zip(SH_BLOCKS[1:], outputs, strict=True):
        wanted = [line.replace("8080", port) for line in expected_lines(block)]
        if not wanted:  # a block whose output the README does not show: it ran
            continue
        got = output.splitlines()
        assert len(got) == len(wanted), (wanted, got)
        for pattern, actual in zip(wanted, got, strict=True):
            assert matches(pattern, actual), f"README shows {pattern!r}, got {actual!r}"


def test_schemathesis_passes_against_a_running_partner_from_the_project_root(
        served: tuple[str, list[str]]) -> None:
    """The README's command (fewer examples, a fixed seed) with the shipped
    schemathesis.toml: an opaque cursor refused with 400 is not ST202."""
    port, _ = served
    url = f"http://127.0.0.1:{port}"
    assert httpx.put(f"{url}/__sim/scenario", content=b"rules: []").status_code == 200
    token = httpx.post(f"{url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "orderops",
        "client_secret": "orderops-secret"}).json()["access_token"]
    run = subprocess.run([str(BIN / "schemathesis"), "run", f"{url}/openapi.json",
                          "-H", f"Authorization: Bearer {token}",
                          "--max-examples", "15", "--seed", "1"],
                         cwd=ROOT, text=True, capture_output=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Configuration:    " in run.stdout and "schemathesis.toml" in run.stdout


def test_the_fake_partner_from_python_does_what_its_comments_claim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    example = next(block for block in blocks if "with FakePartner(scenario)" in block)
    exec(compile(example, "README.md: The fake partner from Python", "exec"), {})  # noqa: S102


def test_scenarios_the_readme_names_exist() -> None:
    for name in set(re.findall(r"scenarios/([a-z-]+\.yaml)", README)):
        assert (ROOT / "scenarios" / name).is_file(), name


def test_the_virtual_time_example_runs_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    example = next(block for block in blocks if "VirtualPartner(" in block)
    exec(compile(textwrap.dedent(example), "README.md: virtual time", "exec"), {})  # noqa: S102


def test_the_client_example_runs_against_a_fake_partner() -> None:
    """The partner client block, pointed at a FakePartner instead of `make serve`."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    example = next(block for block in blocks if "asyncio.run(sync_async())" in block)
    with FakePartner() as partner:
        code = example.replace("http://127.0.0.1:8080", partner.url)
        exec(compile(code, "README.md: the partner client", "exec"), {})  # noqa: S102
