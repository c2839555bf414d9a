"""The dashboard in a real browser: Debian's headless Chromium driven by
Selenium through chromium-driver, against a fake partner on loopback.

A screenshot of each state lands in tmp/ui-screenshots/ (or
$PARTNERKIT_ARTIFACTS). Without Chromium these tests skip, saying so;
`.ci/run` installs it and sets PARTNERKIT_BROWSER_TESTS=required, so in CI a
missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from partnerkit.simulator import FakePartner
from tests.conftest import authed_client

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PARTNERKIT_ARTIFACTS", ROOT / "tmp" / "ui-screenshots"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("PARTNERKIT_BROWSER_TESTS") == "required"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")
WAIT_S = 5.0
DEFAULT = ROOT / "scenarios" / "default.yaml"

if (CHROMIUM is None or CHROMEDRIVER is None) and not REQUIRED:
    pytestmark = pytest.mark.skip(
        reason="no Chromium here (Debian: apt-get install chromium chromium-driver); "
               "the dashboard's browser tests need chromium and chromedriver on PATH")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("PARTNERKIT_BROWSER_TESTS=required but chromium or chromedriver is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                 "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser with a 1280x800 page; no script error or blocked load allowed (the
    4xx answers the tests provoke are logged as network errors: those are fine)."""
    viewport(browser, 1280, 800)
    yield browser
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and entry.get("source") != "network"]
    browser.get("about:blank")
    assert errors == []


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's own size (a headless window's size would include its frame)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def screenshot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait(driver: WebDriver, condition: Any, timeout: float = WAIT_S) -> Any:
    # The page redraws live: an element read a moment ago may be gone; read again.
    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def open_dashboard(driver: WebDriver, url: str) -> None:
    driver.get(f"{url}/__sim/ui")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{url}/__sim/ui")
    wait(driver, lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "live")


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def row_paths(driver: WebDriver) -> list[str]:
    """The journal's paths as drawn, newest first (read in one go: rows redraw live)."""
    paths: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#journal-rows .c-path')]"
        ".map(cell => cell.textContent)")
    return paths


def text_of(driver: WebDriver, selector: str) -> str:
    text: str = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)
    return text


def show_tab(driver: WebDriver, name: str) -> None:
    by_id(driver, f"tab-{name}").click()
    wait(driver, lambda d: by_id(d, f"panel-{name}").is_displayed())


def set_editor(driver: WebDriver, text: str) -> None:
    driver.execute_script(
        "const e = document.getElementById('editor'); e.value = arguments[0];"
        "e.dispatchEvent(new Event('input'));", text)


WATCH_FOR_PATH = """
const [path] = arguments;
window.__appeared = null;
new MutationObserver((_, observer) => {
  for (const cell of document.querySelectorAll('#journal-rows .c-path')) {
    if (cell.textContent.startsWith(path)) {
      window.__appeared = Date.now() / 1000; observer.disconnect(); return;
    }
  }
}).observe(document.getElementById('journal-rows'), {childList: true, subtree: true});
"""


def test_a_request_from_a_plain_client_appears_within_a_second(page: WebDriver) -> None:
    with FakePartner(DEFAULT) as partner, authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        page.execute_script(WATCH_FOR_PATH, "/v1/orders/ORD-000042")
        sent = time.time()
        assert http.get("/v1/orders/ORD-000042").status_code == 200
        appeared = wait(page, lambda d: d.execute_script("return window.__appeared"))
        assert appeared - sent < 1.0, f"the row appeared {appeared - sent:.3f} s after the request"
        http.get("/v1/orders/ORD-999999")  # a 404
        http.get("/v1/orders", params={"limit": 2})
        wait(page, lambda d: len(row_paths(d)) >= 4)
        paths = row_paths(page)
        assert paths[0].startswith("/v1/orders?limit=2")  # newest first
        assert paths.index("/v1/orders/ORD-999999") < paths.index("/v1/orders/ORD-000042")
        screenshot(page, "1-live-journal")


def test_an_entry_opens_to_its_redacted_request_rule_and_fault_by_keyboard(
        page: WebDriver) -> None:
    with FakePartner({"name": "one-503", "rules": [{
            "name": "boom", "match": {"path": "/v1/orders/*"}, "times": 1,
            "fault": {"status": 503, "retry_after": 2}}]}) as partner, \
            authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        http.get("/v1/orders/ORD-000003", params={"fields": "all"},
                 headers={"x-request-id": "req-77", "cookie": "session=abc"})
        wait(page, lambda d: row_paths(d)[:1] == ["/v1/orders/ORD-000003?fields=all"])
        row = page.find_element(By.CSS_SELECTOR, "#journal-rows .jrow")
        seq = row.get_attribute("data-seq")
        by_id(page, "f-fault").send_keys(Keys.TAB)  # from the last filter, Tab reaches the list
        assert page.switch_to.active_element.get_attribute("data-seq") == seq
        page.switch_to.active_element.send_keys(Keys.ARROW_DOWN)  # the token request
        assert page.switch_to.active_element.get_attribute("data-seq") == str(int(seq) - 1)
        page.switch_to.active_element.send_keys(Keys.ARROW_UP, Keys.ENTER)  # Enter opens it
        dialog = wait(page, lambda d: by_id(d, "detail") if by_id(d, "detail").is_displayed()
                      else None)
        text = dialog.text
        assert "503" in text and "boom" in text and "retry_after" in text
        assert "Bearer <redacted>" in text and "req-77" in text and "fields" in text
        assert "session=abc" not in text
        assert partner.journal()[-1]["headers"]["authorization"] == "Bearer <redacted>"
        screenshot(page, "2-entry-detail")
        dialog.send_keys(Keys.ESCAPE)
        wait(page, lambda d: not by_id(d, "detail").is_displayed())
        wait(page, lambda d: d.switch_to.active_element.get_attribute("data-seq") == seq)
        # focus went back to the row


def test_filters_and_pause(page: WebDriver) -> None:
    with FakePartner({"rules": [{"name": "down", "match": {"path": "/v1/orders"},
                                 "fault": {"status": 503}}]}) as partner, \
            authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        http.get("/v1/orders")
        http.get("/v1/orders/ORD-000001")
        http.get("/v1/orders/NOPE")
        wait(page, lambda d: len(row_paths(d)) == 4)  # with the token request
        by_id(page, "f-status").send_keys("5xx")
        wait(page, lambda d: row_paths(d) == ["/v1/orders"])
        by_id(page, "f-status").clear()
        by_id(page, "f-status").send_keys("404, 503")
        wait(page, lambda d: row_paths(d) == ["/v1/orders/NOPE", "/v1/orders"])
        by_id(page, "f-status").send_keys(Keys.CONTROL, "a", Keys.DELETE)
        by_id(page, "f-rule").send_keys("none")
        wait(page, lambda d: "/v1/orders" not in row_paths(d) and len(row_paths(d)) == 3)
        by_id(page, "f-rule").send_keys(Keys.CONTROL, "a", Keys.DELETE)
        by_id(page, "f-fault").send_keys("status")
        wait(page, lambda d: row_paths(d) == ["/v1/orders"])
        by_id(page, "f-fault").send_keys(Keys.CONTROL, "a", Keys.DELETE)
        by_id(page, "f-path").send_keys("ORD-")
        wait(page, lambda d: row_paths(d) == ["/v1/orders/ORD-000001"])
        by_id(page, "f-path").send_keys(Keys.CONTROL, "a", Keys.DELETE)
        wait(page, lambda d: len(row_paths(d)) == 4)

        page.find_element(By.TAG_NAME, "body").send_keys("p")  # the keyboard shortcut
        assert by_id(page, "pause").get_attribute("aria-pressed") == "true"
        http.get("/v1/orders/ORD-000002")
        wait(page, lambda d: "1 new" in by_id(d, "pause").text)
        assert "/v1/orders/ORD-000002" not in row_paths(page)
        screenshot(page, "3-paused")
        by_id(page, "pause").click()
        wait(page, lambda d: row_paths(d)[:1] == ["/v1/orders/ORD-000002"])


BAD_SCENARIO = """\
name: broken
rules:
  - name: too-high
    match: {path: /v1/orders}
    fault: {status: 700}
  - match: {method: FETCH}
    fault: {latency: {fixed_ms: 10}}
"""


def test_a_refused_scenario_shows_each_problem_at_its_line_and_the_old_one_runs_on(
        page: WebDriver) -> None:
    with FakePartner(DEFAULT) as partner, authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        show_tab(page, "scenario")
        wait(page, lambda d: "name: default" in by_id(d, "editor").get_attribute("value"))
        set_editor(page, BAD_SCENARIO)
        by_id(page, "apply").click()
        problems = wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#problems .problem"))
        texts = [problem.text for problem in problems]
        assert len(texts) == 2, texts
        assert texts[0].startswith("Line 5") and "rules[0].fault.status" in texts[0]
        assert texts[1].startswith("Line 6") and "rules[1].match.method" in texts[1]
        assert "previous scenario is still running" in by_id(page, "editor-status").text
        marked = [span.text for span in page.find_elements(By.CSS_SELECTOR, "#gutter .bad")]
        assert marked == ["5", "6"]
        problems[1].click()  # takes the caret to its line
        assert page.execute_script(
            "const e = document.getElementById('editor');"
            "return e.value.slice(e.selectionStart, e.selectionEnd)") == \
            "  - match: {method: FETCH}"
        assert partner.state.scenario.name == "default"
        assert by_id(page, "scenario-name").text == "default"
        assert http.get("/v1/orders/ORD-000001").status_code == 200
        screenshot(page, "4-scenario-refused")


GOOD_SCENARIO = """\
name: from-the-page
seed: 5
rules:
  - name: two-502s
    match: {path: /v1/orders}
    times: 2
    fault: {status: 502}
"""


def test_an_applied_scenario_updates_the_rules_panel_live(page: WebDriver) -> None:
    with FakePartner(DEFAULT) as partner, authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        show_tab(page, "scenario")
        set_editor(page, GOOD_SCENARIO)
        by_id(page, "editor").send_keys(Keys.CONTROL, Keys.ENTER)  # the keyboard way to apply
        wait(page, lambda d: "Applied" in by_id(d, "editor-status").text)
        assert partner.state.scenario.name == "from-the-page"
        wait(page, lambda d: by_id(d, "scenario-name").text == "from-the-page")
        show_tab(page, "rules")
        rule = '#rules [data-rule="two-502s"]'
        wait(page, lambda d: "0 spent · 2 left of 2" in text_of(d, rule))
        assert http.get("/v1/orders").status_code == 502
        wait(page, lambda d: "1 spent · 1 left of 2" in text_of(d, rule))
        screenshot(page, "5-rules-after-apply")

        show_tab(page, "scenario")
        outage = wait(page, lambda d: d.find_element(
            By.CSS_SELECTOR, '#ready button[aria-label^="Apply ready-made scenario outage"]'))
        outage.click()  # a ready-made scenario is one click away
        wait(page, lambda d: by_id(d, "scenario-name").text == "outage")
        assert partner.state.scenario.name == "outage"

        by_id(page, "clear").click()
        wait(page, lambda d: row_paths(d) == [])
        http.get("/v1/orders")
        wait(page, lambda d: len(row_paths(d)) == 1)
        by_id(page, "reset").click()
        wait(page, lambda d: row_paths(d) == [])
        assert partner.journal() == []


def test_the_admin_token_gate(page: WebDriver) -> None:
    with FakePartner(DEFAULT, admin_token="gate-secret-1") as partner:
        page.get(f"{partner.url}/__sim/ui")
        page.execute_script("sessionStorage.clear()")
        page.get(f"{partner.url}/__sim/ui")
        gate = wait(page, lambda d: by_id(d, "gate") if by_id(d, "gate").is_displayed() else None)
        assert by_id(page, "conn").get_attribute("data-state") == "locked"
        assert page.switch_to.active_element.get_attribute("id") == "gate-token"
        screenshot(page, "6-token-gate")
        by_id(page, "gate-token").send_keys("wrong-token", Keys.ENTER)
        wait(page, lambda d: "refused" in by_id(d, "gate-error").text)
        by_id(page, "gate-token").send_keys(Keys.CONTROL, "a", Keys.DELETE)
        by_id(page, "gate-token").send_keys("gate-secret-1", Keys.ENTER)
        wait(page, lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "live")
        assert not gate.is_displayed()
        with authed_client(partner.url) as http:
            http.get("/v1/orders/ORD-000005")
        wait(page, lambda d: "/v1/orders/ORD-000005" in row_paths(d))
        assert "gate-secret-1" not in page.current_url
        screenshot(page, "7-unlocked")


def test_clean_at_1280x800_and_narrow_labelled_and_offline(page: WebDriver) -> None:
    with FakePartner(DEFAULT) as partner, authed_client(partner.url) as http:
        for n in range(1, 40):
            http.get(f"/v1/orders/ORD-{n:06d}")
        open_dashboard(page, partner.url)
        wait(page, lambda d: len(row_paths(d)) >= 40)
        size = page.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " document.documentElement.scrollHeight, document.documentElement.clientHeight]")
        assert size[0] <= size[1] and size[2] <= size[3], size  # no page scroll at 1280x800
        screenshot(page, "8-desktop-1280x800")

        unlabelled = page.execute_script("""
            return [...document.querySelectorAll('input, textarea, button, select, [role=tab]')]
              .filter(e => !e.closest('[hidden]') && !(e.labels && e.labels.length)
                           && !e.getAttribute('aria-label') && !e.textContent.trim())
              .map(e => e.outerHTML.slice(0, 80));""")
        assert unlabelled == []
        loaded = page.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(name.startswith(partner.url) for name in loaded), loaded

        viewport(page, 390, 844)
        wait(page, lambda d: d.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"))
        screenshot(page, "9-narrow")


def test_stays_live_while_the_fake_partner_is_busy(page: WebDriver) -> None:
    """A burst larger than the stream's batches: the page gets the newest, says
    how many it was not sent, and loses count of none."""
    with FakePartner() as partner:
        open_dashboard(page, partner.url)
        with httpx.Client(base_url=partner.url) as http:
            for _ in range(450):
                http.get("/v1/orders")  # 401s: cheap, and journaled all the same

        def accounted(driver: WebDriver) -> int:
            held = int(by_id(driver, "journal-count").text or 0)
            note = re.match(r"(\d+) entries arrived too fast", by_id(driver, "journal-note").text)
            return held + (int(note.group(1)) if note else 0)

        try:
            wait(page, lambda d: accounted(d) == 450)
        except TimeoutException:  # pragma: no cover - diagnostics
            pytest.fail(f"the page accounts for {accounted(page)} of 450 requests")
        assert "arrived too fast" in by_id(page, "journal-note").text
        assert row_paths(page)[0] == "/v1/orders"
        assert page.find_element(By.CSS_SELECTOR, "#journal-rows .jrow").get_attribute(
            "data-seq") == str(partner.journal()[-1]["seq"])


def test_the_page_reconnects_and_tells_a_restarted_fake_partner_apart(page: WebDriver) -> None:
    first = FakePartner().start()
    port = int(first.url.rsplit(":", 1)[1])
    try:
        open_dashboard(page, first.url)
        httpx.get(f"{first.url}/v1/orders/OLD")
        wait(page, lambda d: "/v1/orders/OLD" in row_paths(d))
    finally:
        first.close()
    wait(page, lambda d: by_id(d, "conn").get_attribute("data-state") == "down")
    with FakePartner(port=port) as second:
        wait(page, lambda d: by_id(d, "conn").get_attribute("data-state") == "live")
        httpx.get(f"{second.url}/v1/orders/NEW")
        wait(page, lambda d: row_paths(d) == ["/v1/orders/NEW"])  # the old journal is gone


def test_the_verdicts_of_the_client_behind_the_journal(page: WebDriver) -> None:
    with FakePartner() as partner, authed_client(partner.url) as http:
        open_dashboard(page, partner.url)
        show_tab(page, "verdicts")
        http.get("/v1/orders/ORD-000001")
        wait(page, lambda d: "Every contract holds" in by_id(d, "verdict-summary").text)
        for _ in range(3):  # a 404 retried: R1 says never
            http.get("/v1/orders/NOPE", headers={"x-request-id": "lookup-nope"})
        wait(page, lambda d: "violation" in by_id(d, "verdict-summary").text)
        assert "R1" in by_id(page, "violations").text
        assert "✗" in by_id(page, "verdicts-count").text
        screenshot(page, "10-verdicts")
        by_id(page, "clear").click()  # an empty journal judges no one
        wait(page, lambda d: "No client requests" in by_id(d, "verdict-summary").text)
