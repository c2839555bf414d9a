"""schemathesis, in process, against the fake partner with an empty scenario:
every operation (stateless) and call sequences through the OpenAPI links
(stateful). All checks but response time are on."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from partnerkit.simulator import create_app

app = create_app()  # an empty scenario: a well-behaved partner
state = app.state
TOKEN = state.tokens.issue(seed=0, ttl_s=86_400 * 365)


@schemathesis.auth()
class PartnerToken:
    """The token a real client would fetch, for every operation but the token one."""

    def get(self, case: Any, context: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# An explicit default config: the repository's schemathesis.toml (for the CLI
# against a running partner) must not loosen this stricter in-process run.
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig())


@pytest.fixture(autouse=True)
def _fresh_partner() -> None:
    state.reset()


def _excluded(case: Any) -> list[Any]:
    """A cursor is opaque: only one the partner issued is valid, so a random
    string is rightly refused with 400 invalid_cursor although it matches the
    schema (`type: string`). Every other check stays on, for every request."""
    if case.operation.path == "/v1/orders" and "cursor" in (case.query or {}):
        return [positive_data_acceptance]
    return []


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: Any) -> None:
    case.call_and_validate(excluded_checks=_excluded(case))


class StatefulPartner(schema.as_state_machine()):  # type: ignore[misc]
    def validate_response(self, response: Any, case: Any,
                          additional_checks: Any = None, **kwargs: Any) -> None:
        case.validate_response(response, additional_checks=additional_checks,
                               excluded_checks=_excluded(case),
                               transport_kwargs=kwargs or None)


def test_call_sequences_through_links_conform() -> None:
    StatefulPartner.run(settings=settings(stateful_step_count=6,
                                          suppress_health_check=list(HealthCheck)))
