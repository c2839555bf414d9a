"""Composes the fake partner: partner API + admin API under the fault middleware."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partnerkit.simulator.admin_api import AdminAPI
from partnerkit.simulator.answer import Answer
from partnerkit.simulator.backends import StateUnavailable
from partnerkit.simulator.fault_middleware import FaultMiddleware
from partnerkit.simulator.partner_api import PartnerAPI, PartnerRouter
from partnerkit.simulator.proxy import ProxyAdminAPI, ProxyAPI, ProxyState
from partnerkit.simulator.replay import ReplayAPI, ReplayState
from partnerkit.simulator.scenario import Scenario
from partnerkit.simulator.state import PartnerState
from partnerkit.simulator.ui import Dashboard

# Starlette's 404/405 and the state backend's failure under /__sim/ (the admin API and
# the dashboard): answers in the admin API's shape, ending in a newline as its own do.


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    headers = [(name.lower().encode("latin-1"), _sorted_methods(value) if name.lower() == "allow"
                else value.encode("latin-1")) for name, value in (exc.headers or {}).items()]
    return Answer.error(exc.status_code, code, str(exc.detail), headers,
                        end=b"\n").as_response()


def _sorted_methods(allow: str) -> bytes:
    """Allow in one order on every run (Starlette joins a set)."""
    return ", ".join(sorted(method.strip() for method in allow.split(","))).encode("latin-1")


async def _state_unavailable(request: Request, exc: Exception) -> Response:
    return Answer.error(503, "state_backend_unavailable", str(exc), end=b"\n").as_response()


def _starlette(routes: list[Route]) -> Starlette:
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error,
                                                        StateUnavailable: _state_unavailable})


def _admin(state: PartnerState, admin: AdminAPI) -> Starlette:
    """The admin API and, beside it behind the same token, the dashboard at /__sim/ui."""
    return _starlette(admin.routes() + Dashboard(state, admin).routes())


class PartnerApp(FaultMiddleware):
    """The ASGI app of the fake partner; `.state` is its live state."""


def create_app(scenario: Scenario | None = None, *, state: PartnerState | None = None,
               journal_size: int = 10_000, admin_token: str | None = None) -> PartnerApp:
    """A fake partner as an ASGI app: serve it with uvicorn, or call it in
    process through `httpx.ASGITransport` (connection faults then raise)."""
    state = state or PartnerState(scenario, journal_size=journal_size)
    api = PartnerRouter(PartnerAPI(state))
    return PartnerApp(api, _admin(state, AdminAPI(state, admin_token)), state)


def create_replay_app(state: ReplayState, *, admin_token: str | None = None) -> PartnerApp:
    """A fake partner answering from a cassette, with the fault overlay and the
    admin API of `create_app`; tokens are not checked (recorded ones are redacted)."""
    return PartnerApp(ReplayAPI(state.index, state.miss, pace=state.recorded_latency,
                                sleep=state.waits.sleep),
                      _admin(state, AdminAPI(state, admin_token)),
                      state, simulated=False)


def create_proxy_app(state: ProxyState, *, admin_token: str | None = None) -> PartnerApp:
    """A fault proxy: the scenario's faults in front of `state.upstream`, with the admin
    API of `create_app`. Tokens are the upstream's to check; one an `expire_token`
    fault revoked stays refused here."""
    admin = _admin(state, ProxyAdminAPI(state, admin_token))
    return PartnerApp(ProxyAPI(state.upstream, state.tee), admin, state, simulated=False,
                      keep_revoked=True)
