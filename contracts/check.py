"""Property tests of your own: one fault plan per example, judged, replayable.

`ContractCheck.check(plan, operation, run)` serves the plan on the fake
partner (reset first, so every example starts from the same state), runs one
operation of a fresh client, judges every contract over what happened, and
raises `ContractViolation` with the violations. Only on the final run of a
failing test — the shrunk example Hypothesis replays last, or an `@example`
— is the plan written to a scenario file, once, with the line that serves it:

    @given(plan=fault_plans())
    def test_get_order(partner_contracts, plan):
        partner_contracts.check(plan, "get_order", lambda c: c.get_order("ORD-000003"))

The pytest plugin hands it out as the session-scoped `partner_contracts`
fixture, so Hypothesis' function-scoped-fixture health check does not apply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import anyio

from partnerkit.client import AsyncPartnerClient, PartnerClient, RetryPolicy
from partnerkit.contracts import evidence
from partnerkit.contracts.harness import client_settings, observe, observe_async
from partnerkit.contracts.reproduce import save_failing_plan
from partnerkit.contracts.verdicts import (
    VERDICTS,
    ClientSettings,
    ContractViolation,
    Observation,
    Report,
    judge,
)
from partnerkit.simulator.journal_entry import JournalEntryJSON


class ScriptablePartner(Protocol):
    """A fake partner in this process (FakePartner) or behind its admin API."""

    url: str

    def set_scenario(self, scenario: Any) -> None: ...

    def reset(self) -> None: ...

    def journal(self) -> list[JournalEntryJSON]: ...


def is_final_example() -> bool:
    """True on the run whose failure Hypothesis reports (and outside Hypothesis)."""
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:  # not inside a Hypothesis test: every run is final
        return True


def current_test_name() -> str:
    """The running pytest test, as `file.py::test_name[param]`."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "partnerkit-check")
    return current.rsplit(" (", 1)[0].split("/")[-1]


def fail_with_plan(report: Report, plan: Mapping[str, Any], test_name: str) -> None:
    """Raise the report's violations; on the final example, write the plan first."""
    if not is_final_example():
        report.raise_for_violations()
    why = "\n".join(str(violation) for violation in report.violations)
    path = save_failing_plan(test_name, plan, why)
    # The plan itself too: Hypothesis prints `plan=` empty when any plan would have failed.
    report.raise_for_violations(f"the plan: {json.dumps(plan, sort_keys=True, default=str)}\n"
                                f"replay it: partnersim serve --scenario {path}")


def _partner_details(partner: ScriptablePartner) -> dict[str, Any]:
    """The data set before the operation (P3, M1), where the partner is in process."""
    state = getattr(partner, "state", None)
    if state is None:
        return {}
    initial = frozenset(state.store.ids())
    return {"initial_order_ids": initial,
            "partner_orders": {i: state.store.order(i) for i in initial}}


def _materialised(result: Any) -> Any:
    """An iterator of orders (a sync) is consumed inside the operation's timing."""
    if isinstance(result, Iterable) and not isinstance(result, str | bytes | Mapping):
        return list(result)
    return result


class ContractCheck:
    """Runs client operations under fault plans and judges every contract."""

    def __init__(self, partner: ScriptablePartner, *, credentials: tuple[str, str],
                 timeout: float, deadline: float, retry: RetryPolicy,
                 page_size: int | None = None, max_pages: int = 10_000) -> None:
        self.partner = partner
        self.credentials = credentials
        self.page_size = page_size
        self.retry = retry
        self.settings: ClientSettings = client_settings(
            timeout=timeout, deadline=deadline, retry=retry, max_pages=max_pages)

    def _client_options(self) -> dict[str, Any]:
        client_id, client_secret = self.credentials
        options: dict[str, Any] = {
            "client_id": client_id, "client_secret": client_secret,
            "timeout": self.settings.timeout, "deadline": self.settings.deadline,
            "retry": self.retry, "max_pages": self.settings.max_pages}
        if self.page_size is not None:
            options["page_size"] = self.page_size
        return options

    def _serve(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        self.partner.set_scenario(dict(plan))
        self.partner.reset()
        evidence.set_scenario(plan)
        return {**_partner_details(self.partner), "secrets": (self.credentials[1],)}

    def observe(self, plan: Mapping[str, Any], operation: str,
                run: Callable[[PartnerClient], Any], *,
                idempotency_key: str | None = None) -> Observation:
        """Serve `plan` and observe `run(client)` on a fresh sync client."""
        details = self._serve(plan)
        with PartnerClient.from_url(self.partner.url, **self._client_options()) as client:
            return observe(self.partner, operation, lambda: _materialised(run(client)),
                           self.settings, idempotency_key=idempotency_key, **details)

    def observe_async(self, plan: Mapping[str, Any], operation: str,
                      run: Callable[[AsyncPartnerClient], Awaitable[Any]], *,
                      idempotency_key: str | None = None) -> Observation:
        """Serve `plan` and observe `await run(client)` on a fresh async client."""
        details = self._serve(plan)

        async def main() -> Observation:
            async with AsyncPartnerClient.from_url(self.partner.url,
                                                   **self._client_options()) as client:
                return await observe_async(self.partner, operation, lambda: run(client),
                                           self.settings, idempotency_key=idempotency_key,
                                           **details)

        return anyio.run(main)

    def check(self, plan: Mapping[str, Any], operation: str,
              run: Callable[[PartnerClient], Any], *, idempotency_key: str | None = None,
              contracts: Sequence[str] = tuple(VERDICTS)) -> Report:
        """Judge one operation of the sync client under `plan`; raise on a violation."""
        observation = self.observe(plan, operation, run, idempotency_key=idempotency_key)
        return self.judge(plan, observation, contracts)

    def check_async(self, plan: Mapping[str, Any], operation: str,
                    run: Callable[[AsyncPartnerClient], Awaitable[Any]], *,
                    idempotency_key: str | None = None,
                    contracts: Sequence[str] = tuple(VERDICTS)) -> Report:
        """`check` for the async client: `run` is `async def run(client)`."""
        observation = self.observe_async(plan, operation, run, idempotency_key=idempotency_key)
        return self.judge(plan, observation, contracts)

    def judge(self, plan: Mapping[str, Any], observation: Observation,
              contracts: Sequence[str] = tuple(VERDICTS)) -> Report:
        """Judge an observation made under `plan`; on violations, fail with the plan."""
        report = judge(observation, contracts)
        if not report.passed:
            fail_with_plan(report, plan, current_test_name())
        return report


__all__ = ["ContractCheck", "ContractViolation", "fail_with_plan", "is_final_example"]
