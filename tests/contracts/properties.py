"""The property at the heart of the suite: under any fault plan, a client
keeps every contract. Shared by the property tests and the reproduction test."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from partnerkit.client import AsyncPartnerClient, PartnerClient, RetryPolicy
from partnerkit.contracts import evidence
from partnerkit.contracts.check import fail_with_plan
from partnerkit.contracts.harness import client_settings, observe, observe_async
from partnerkit.contracts.verdicts import VERDICTS, Observation, judge
from partnerkit.simulator import FakePartner

TIMEOUT, DEADLINE = 0.3, 1.0
RETRY = RetryPolicy(max_attempts=3, backoff_base=0.02, backoff_max=0.1, retry_after_max=2.0)
SETTINGS = client_settings(timeout=TIMEOUT, deadline=DEADLINE, retry=RETRY, max_pages=20)
OPERATIONS: dict[str, tuple[Any, ...]] = {
    "get_order": ("ORD-000003",),
    "acknowledge": ("ORD-000004", "ack-key-1"),
    "iter_orders": (),
}


def examples(fast: int) -> int:
    """`fast` examples in `make test`; the soak profile's own (many more) otherwise."""
    if os.environ.get("PARTNERKIT_HYPOTHESIS_PROFILE", "partnerkit-fast") == "partnerkit-fast":
        return fast
    return 400


def _details(partner: FakePartner, operation: str) -> dict[str, Any]:
    initial = frozenset(partner.state.store.ids())
    args = OPERATIONS[operation]
    return {
        "initial_order_ids": initial,
        "partner_orders": {i: partner.state.store.order(i) for i in initial},
        "idempotency_key": args[1] if operation == "acknowledge" else None,
        "secrets": ("orderops-secret",),
    }


def observe_real_client(partner: FakePartner, operation: str, kind: str) -> Observation:
    details = _details(partner, operation)
    args = OPERATIONS[operation]
    options: dict[str, Any] = {"client_id": "orderops", "client_secret": "orderops-secret",
                               "timeout": TIMEOUT, "deadline": DEADLINE, "retry": RETRY,
                               "max_pages": 20, "page_size": 5}
    if kind == "sync":
        with PartnerClient.from_url(partner.url, **options) as client:
            def run() -> Any:
                result = getattr(client, operation)(*args)
                return list(result) if operation == "iter_orders" else result

            return observe(partner, operation, run, SETTINGS, **details)

    async def main() -> Observation:
        async with AsyncPartnerClient.from_url(partner.url, **options) as client:
            async def run() -> Any:
                if operation == "iter_orders":
                    return [order async for order in client.iter_orders()]
                return await getattr(client, operation)(*args)

            return await observe_async(partner, operation, run, SETTINGS, **details)

    return anyio.run(main)


def holds_under(partner: FakePartner, plan: dict[str, Any], test_name: str,
                run: Callable[[], Observation],
                contracts: Sequence[str] = tuple(VERDICTS)) -> None:
    """Serve `plan`, observe one operation, and fail (saving the plan) on any violation."""
    partner.set_scenario(plan)
    partner.reset()
    evidence.set_scenario(plan)
    report = judge(run(), contracts)
    if not report.passed:
        fail_with_plan(report, plan, test_name)
