"""The admin API under /__sim/: health, scenario, reset, journal, verdicts.

Loopback-only by default (the servers bind 127.0.0.1) and, when started
with an admin token, closed to requests without `X-Admin-Token`. A bad
scenario is refused with every problem and the running one stays.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.routing import Route

from partnerkit.simulator.answer import Answer
from partnerkit.simulator.journal_verdicts import judge_journal
from partnerkit.simulator.partner_api import read_limited
from partnerkit.simulator.scenario import Scenario, ScenarioError, parse_scenario
from partnerkit.simulator.state import PartnerState

MAX_SCENARIO_BYTES = 1_000_000
Endpoint = Callable[[Request], Awaitable[Answer]]


def admin_json(status: int, payload: Any) -> Answer:
    """An admin answer: JSON ending in a newline, so answers in a terminal don't run together."""
    return Answer.json(status, payload, end=b"\n")


def admin_error(status: int, code: str, message: str) -> Answer:
    return Answer.error(status, code, message, end=b"\n")


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text[:40]!r}") from None


class AdminAPI:
    def __init__(self, state: PartnerState, admin_token: str | None = None) -> None:
        if admin_token is not None and not admin_token.strip():
            # No header compares equal to "": it would have left the API open to all.
            raise ValueError("an empty admin token protects nothing; pass None for no token")
        self.state = state
        self.admin_token = admin_token

    def routes(self) -> list[Route]:
        return [
            self.route("/__sim/health", GET=self.health),
            self.route("/__sim/scenario", GET=self.get_scenario, PUT=self.put_scenario),
            self.route("/__sim/reset", POST=self.reset),
            self.route("/__sim/journal", GET=self.get_journal, DELETE=self.clear_journal),
            self.route("/__sim/verdicts", GET=self.verdicts),
        ]

    def route(self, path: str, **endpoints: Endpoint) -> Route:
        """One admin route for `path`, its endpoints by method, behind the admin-token
        gate: the one place it is checked. One route a path, so a wrong method's 405
        names every method the path has."""
        async def gated(request: Request) -> Answer:
            method = "GET" if request.method == "HEAD" else request.method
            return self._forbidden(request) or await endpoints[method](request)

        return Route(path, gated, methods=list(endpoints))

    def _forbidden(self, request: Request) -> Answer | None:
        if self.admin_token is None:
            return None
        given = request.headers.get("x-admin-token", "")
        if hmac.compare_digest(given.encode(), self.admin_token.encode()):
            return None
        return admin_error(401, "admin_token_required",
                           "this fake partner's admin API needs the X-Admin-Token header")

    def denied(self, request: Request) -> Answer | None:
        """The 401 for a request without the admin token, or None: for pages
        served beside the admin API (the dashboard) that share its gate."""
        return self._forbidden(request)

    async def health(self, request: Request) -> Answer:
        return admin_json(200, self.state.describe())

    async def get_scenario(self, request: Request) -> Answer:
        return admin_json(200, {"scenario": self.state.scenario.source,
                                "spent": self.state.spent()})

    async def put_scenario(self, request: Request) -> Answer:
        body = await read_limited(request, MAX_SCENARIO_BYTES)
        if body is None:
            return admin_error(413, "scenario_too_large",
                               f"a scenario is at most {MAX_SCENARIO_BYTES} bytes")
        try:
            # Off the event loop: a 1 MB scenario or a 200,000-order data set takes
            # seconds to build, and every other request (health too) would wait for it.
            scenario = await anyio.to_thread.run_sync(self._install, body)
        except ScenarioError as exc:
            return admin_json(422, {
                "error": "invalid_scenario",
                "message": f"scenario refused with {len(exc.problems)} problem(s); "
                           "the previous scenario is still running",
                "problems": [problem.as_json() for problem in exc.problems],
            })
        return admin_json(200, {"status": "ok", "scenario": scenario.name,
                                "rules": len(scenario.rules)})

    def _install(self, body: bytes) -> Scenario:
        scenario = parse_scenario(body, source="request body")
        self.state.set_scenario(scenario)
        return scenario

    async def reset(self, request: Request) -> Answer:
        self.state.reset()
        return admin_json(200, {"status": "ok"})

    async def get_journal(self, request: Request) -> Answer:
        return admin_json(200, {"entries": self.state.journal.entries()})

    async def clear_journal(self, request: Request) -> Answer:
        self.state.journal.clear()
        return admin_json(200, {"status": "ok"})

    async def verdicts(self, request: Request) -> Answer:
        """The generic contracts judged on the journal: `?max_attempts=N&min_backoff_ms=M`."""
        try:
            options = {name: _number(name, value) for name, value in request.query_params.items()
                       if name in ("max_attempts", "min_backoff_ms", "window_s")}
            if "max_attempts" in options and not options["max_attempts"].is_integer():
                raise ValueError("max_attempts must be a whole number")
            verdict = judge_journal(
                self.state.journal.entries(),
                max_attempts=int(options.get("max_attempts", 4)),
                min_backoff_ms=options.get("min_backoff_ms", 5.0),
                window_s=options.get("window_s", 30.0))
        except ValueError as exc:
            return admin_error(400, "bad_request", str(exc))
        return admin_json(200, verdict.as_json())
