"""Take the README's dashboard screenshot (docs/dashboard.png), reproducibly.

    .venv/bin/python scripts/dashboard_screenshot.py [OUT.png]

Starts a fake partner with the ready-made `chaos` scenario, sends it a little
traffic with a plain httpx client (seeded faults: the same picture every
time, bar the clock), opens the dashboard in headless Chromium at 1280x800
and saves a screenshot. Needs chromium and chromium-driver.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from partnerkit.simulator import FakePartner

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def send(http: httpx.Client, method: str, path: str, **options: Any) -> httpx.Response | None:
    """One request; the chaos scenario cuts some connections on purpose."""
    try:
        return http.request(method, path, **options)
    except httpx.HTTPError:
        return None


def traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5.0) as http:
        token = http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "orderops",
            "client_secret": "orderops-secret"}).json()["access_token"]
        http.headers["authorization"] = f"Bearer {token}"
        cursor = None
        for page in range(8):
            params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
            response = send(http, "GET", "/v1/orders", params=params,
                            headers={"x-request-id": f"sync-{page}"})
            with contextlib.suppress(ValueError):  # a malformed body, on purpose
                cursor = (response.json().get("next_cursor") if response else None) or cursor
            for n in range(3):
                send(http, "GET", f"/v1/orders/ORD-{page * 3 + n + 1:06d}")
        send(http, "POST", "/v1/orders/ORD-000004/acknowledgements",
             headers={"idempotency-key": "ack-ORD-000004"})
        send(http, "GET", "/v1/orders/ORD-999999")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='pk-shot-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=Service(shutil.which("chromedriver") or "chromedriver"))
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        with FakePartner(ROOT / "scenarios" / "chaos.yaml") as partner:
            driver.get(f"{partner.url}/__sim/ui")
            WebDriverWait(driver, 10).until(
                lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "live")
            traffic(partner.url)
            time.sleep(1.5)  # the stream's next ticks, and the health figures' refresh
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
    finally:
        driver.quit()
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
