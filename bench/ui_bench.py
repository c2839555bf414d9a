"""Throughput of the fake partner with the dashboard open vs with none, in one run.

    .venv/bin/python bench/ui_bench.py [--duration 8] [--rounds 3]

One `partnersim serve` process; wrk (-t1 -c64) asks for one order with a valid
token. Each round measures, in turn: no page open; one client reading the
dashboard's event stream (the server's own cost of a page); a real dashboard
page in headless Chromium (stream + rendering, on the same cores). The order
turns around every round so slow drift of the machine cancels out; the median
of each is reported with its ratio to "no page". Needs wrk, and Chromium with
chromium-driver for the browser row (skipped with a message otherwise).
Results are printed and appended to bench/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import httpx
from harness import ORDER_PATH, PYTHON, ROOT, Load, free_port, process, token_for, wrk

BENCH = Path(__file__).resolve().parent
SETTLE_S = 2.0  # after opening or closing the page, before measuring
Variant = Callable[[], AbstractContextManager[None]]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")


def chromium_cpu_s() -> float:
    """CPU seconds used so far by every Chromium process (Linux /proc)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "chrom" in stat[stat.index("(") + 1:stat.rindex(")")]:
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def stream_reader(base: str) -> Iterator[None]:
    """A client reading /__sim/ui/events until told to stop, counting bytes."""
    stop = threading.Event()
    received = [0]

    def read() -> None:
        with httpx.stream("GET", f"{base}/__sim/ui/events", timeout=30.0) as response:
            for chunk in response.iter_raw():
                received[0] += len(chunk)
                if stop.is_set():
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield
    finally:
        stop.set()
        reader.join(30)
        if received[0] < 1000:
            raise RuntimeError(f"the event stream delivered only {received[0]} bytes")


class Browser:
    """Headless Chromium, started once for the whole run (idle on about:blank), so
    every variant runs beside the same browser and only the open page differs."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='pk-bench-')}",
                     "--window-size=1280,800"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(
            options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        self.driver.get("about:blank")

    @contextmanager
    def dashboard(self, base: str) -> Iterator[None]:
        """The dashboard open and live for the whole block, then closed again."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver = self.driver
        driver.get(f"{base}/__sim/ui")
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "live")
        time.sleep(SETTLE_S)
        try:
            yield
            shown = driver.execute_script(
                "return document.querySelectorAll('#journal-rows .jrow').length")
            if not shown:
                raise RuntimeError("the dashboard page showed no journal rows under load")
        finally:
            driver.get("about:blank")
            time.sleep(SETTLE_S)

    def quit(self) -> None:
        self.driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true",
                        help="print only; do not append to bench/results.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("ui_bench: wrk is missing (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    variants: dict[str, Variant] = {
        "no page open": nullcontext,
        "event stream read by a client (the server's cost)": lambda: stream_reader(base),
    }
    browser = None
    if shutil.which("chromium") and shutil.which("chromedriver"):
        browser = Browser()
        dashboard = browser.dashboard
        variants["dashboard open in headless Chromium"] = lambda: dashboard(base)
    else:
        print("ui_bench: no chromium/chromedriver: the browser row is skipped", file=sys.stderr)
    loads: dict[str, list[Load]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    command = [PYTHON, "-m", "partnerkit.simulator.cli", "serve", "--port", str(port)]
    try:
        measure(variants, loads, cpu, command, base, args)
    finally:
        if browser is not None:
            browser.quit()
    report = table(loads, cpu, args)
    print(report)
    if not args.no_append:
        with (BENCH / "results.md").open("a") as results:
            results.write("\n" + report)
    return 0


def measure(variants: dict[str, Variant], loads: dict[str, list[Load]],
            cpu: dict[str, list[float]], command: list[str], base: str,
            args: argparse.Namespace) -> None:
    with process(command, f"{base}/__sim/health"):
        token = token_for(base)
        url = f"{base}{ORDER_PATH}"
        wrk(url, connections=64, seconds=3, token=token)  # warm-up
        for round_ in range(args.rounds):
            names = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in names:
                with variants[name]():
                    before = chromium_cpu_s()
                    loads[name].append(wrk(url, connections=64, seconds=args.duration,
                                           token=token))
                    cpu[name].append((chromium_cpu_s() - before) / args.duration)


def table(loads: dict[str, list[Load]], cpu: dict[str, list[float]],
          args: argparse.Namespace) -> str:
    base_rps = statistics.median(load.requests_per_s for load in loads["no page open"])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip() or "unknown"
    lines = [
        f"## {dt.date.today().isoformat()} — commit {commit}: dashboard open vs none (issue 17)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; one `partnersim serve`"
        f", `wrk -t1 -c64 -d{args.duration:g}s` on `GET {ORDER_PATH}`, empty scenario, "
        f"{args.rounds} rounds, order reversed every round; median of the rounds; "
        "one headless Chromium runs throughout (on about:blank but for its row). "
        "Command: `.venv/bin/python bench/ui_bench.py`.",
        "",
        "| while wrk runs | req/s (median) | × no page | rounds (req/s) | p99 ms (median) "
        "| Chromium CPU, % of a core |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, runs in loads.items():
        rps = statistics.median(load.requests_per_s for load in runs)
        p99 = statistics.median(load.p99_ms for load in runs)
        rounds = ", ".join(f"{load.requests_per_s:,.0f}" for load in runs)
        share = statistics.median(cpu[name]) * 100
        lines.append(f"| {name} | {rps:,.0f} | {rps / base_rps:.2f} | {rounds} | {p99:.1f} "
                     f"| {share:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
