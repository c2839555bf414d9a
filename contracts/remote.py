"""A fake partner that is already running somewhere, driven through its admin API.

It has the shape of `simulator.FakePartner` (url, set_scenario, journal,
reset), so the pytest plugin and the harness work the same against a
`partnersim serve` started by hand (`--partner-url`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from partnerkit.simulator.journal_entry import JournalEntryJSON


class RemotePartnerError(RuntimeError):
    """The admin API refused or failed; the message says what it answered."""


class RemotePartner:
    def __init__(self, url: str, *, admin_token: str | None = None, timeout: float = 10.0,
                 credentials: tuple[str, str] = ("orderops", "orderops-secret")) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        headers = {"x-admin-token": admin_token} if admin_token else {}
        self._admin = httpx.Client(base_url=f"{self.url}/__sim", headers=headers,
                                   timeout=timeout)

    def close(self) -> None:
        self._admin.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        where = f"{method} {self.url}/__sim{path}"
        try:
            response = self._admin.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise RemotePartnerError(
                f"nothing answers at {self.url} ({type(error).__name__}: {error or 'no answer'}); "
                f"start a fake partner there first (make serve, or partnersim serve "
                f"--port PORT)") from None
        if response.status_code >= 400:
            raise RemotePartnerError(f"{where} answered {response.status_code}: "
                                     f"{response.text[:2000]}")
        try:
            return response.json()
        except ValueError:
            raise RemotePartnerError(
                f"{where} answered {response.status_code} "
                f"{response.headers.get('content-type', 'without a content type')}, not "
                "partnersim's JSON: is this a partnersim?") from None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def set_scenario(self, scenario: Mapping[str, Any] | str | bytes | Path) -> None:
        if isinstance(scenario, Path):
            body = scenario.read_bytes()
        elif isinstance(scenario, Mapping):
            body = json.dumps(scenario).encode()
        else:
            body = scenario.encode() if isinstance(scenario, str) else scenario
        self._call("PUT", "/scenario", content=body)

    def journal(self) -> list[JournalEntryJSON]:
        entries: list[JournalEntryJSON] = self._call("GET", "/journal")["entries"]
        return entries

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def reset(self) -> None:
        self._call("POST", "/reset")
