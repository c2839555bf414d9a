"""Drive the sync and async clients through one interface, so every contract
test runs against both."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from partnerkit.client import AsyncPartnerClient, PartnerClient, RetryPolicy

FAST_RETRIES = RetryPolicy(max_attempts=4, backoff_base=0.02, backoff_max=0.2,
                           retry_after_max=30)


@dataclass
class Result:
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


Call = tuple[str, tuple[Any, ...]]  # ("get_order", ("ORD-000001",)), ("sync", ())


class Driver:
    """Runs calls, in order, on one client of `kind` ("sync" or "async")."""

    def __init__(self, kind: str, url: str, **options: Any) -> None:
        self.kind = kind
        self.url = url
        self.options = {"client_id": "orderops", "client_secret": "orderops-secret",
                        "timeout": 2.0, "deadline": 5.0, "retry": FAST_RETRIES, **options}

    def run(self, *calls: Call) -> list[Result]:
        if self.kind == "sync":
            return self._run_sync(calls)
        return anyio.run(self._run_async, calls)

    def one(self, name: str, *args: Any) -> Result:
        return self.run((name, args))[0]

    def _run_sync(self, calls: tuple[Call, ...]) -> list[Result]:
        results = []
        with PartnerClient.from_url(self.url, **self.options) as client:
            for name, args in calls:
                started = time.monotonic()
                try:
                    if name == "sync":
                        value: Any = list(client.iter_orders(*args))
                    else:
                        value = getattr(client, name)(*args)
                    results.append(Result(value, None, time.monotonic() - started))
                except Exception as error:
                    results.append(Result(None, error, time.monotonic() - started))
        return results

    async def _run_async(self, calls: tuple[Call, ...]) -> list[Result]:
        results = []
        async with AsyncPartnerClient.from_url(self.url, **self.options) as client:
            for name, args in calls:
                started = time.monotonic()
                try:
                    if name == "sync":
                        value: Any = [order async for order in client.iter_orders(*args)]
                    else:
                        value = await getattr(client, name)(*args)
                    results.append(Result(value, None, time.monotonic() - started))
                except Exception as error:
                    results.append(Result(None, error, time.monotonic() - started))
        return results


@pytest.fixture(params=["sync", "async"])
def make_driver(request: pytest.FixtureRequest) -> Callable[..., Driver]:
    kind: str = request.param

    def make(url: str, **options: Any) -> Driver:
        return Driver(kind, url, **options)

    return make


def api_entries(journal: list[dict[str, Any]], path: str | None = None) -> list[dict[str, Any]]:
    """Journal entries of partner API calls (token requests left out)."""
    return [e for e in journal if e["path"] != "/oauth/token"
            and (path is None or e["path"] == path)]


def token_entries(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["path"] == "/oauth/token"]
