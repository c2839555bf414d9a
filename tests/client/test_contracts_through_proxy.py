"""Every live contract test again, with the real client going through the fault proxy.

The upstream is the fake partner with no scenario of its own; each test's
faults are set on the proxy in front of it and judged from the proxy's
journal. A test whose faults change the simulated data set (cursor_drift
insert/update/delete) is skipped: the proxy refuses those by design, as an
upstream's data set is not the proxy's to change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from partnerkit.simulator import FakePartner, FaultProxy, ScenarioError
from partnerkit.simulator.state import PartnerState
from tests.client import test_contracts_live as live


class ProxiedPartner:
    """The shape of FakePartner that the live tests use, pointing at the proxy."""

    def __init__(self, upstream: FakePartner, proxy: FaultProxy) -> None:
        self.upstream = upstream
        self.proxy = proxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def state(self) -> PartnerState:
        return self.upstream.state  # the tokens are the upstream's

    def set_scenario(self, scenario: Mapping[str, Any] | str | bytes | Path) -> None:
        try:
            self.proxy.set_scenario(scenario)
        except ScenarioError as exc:
            pytest.skip(f"the proxy refuses data-set drift by design: {exc}")

    def journal(self) -> list[dict[str, Any]]:
        return self.proxy.journal()

    def reset(self) -> None:
        self.upstream.reset()
        self.proxy.reset()


@pytest.fixture(scope="module")
def proxied_server() -> Iterator[ProxiedPartner]:
    with FakePartner() as upstream, FaultProxy(upstream.url) as proxy:
        yield ProxiedPartner(upstream, proxy)


@pytest.fixture
def partner(proxied_server: ProxiedPartner) -> ProxiedPartner:
    """Overrides the suite's `partner`: the proxy, empty scenario and journals."""
    proxied_server.proxy.set_scenario({"rules": []})
    proxied_server.reset()
    return proxied_server


# The live module's tests, collected here a second time with `partner` above.
globals().update({name: test for name, test in vars(live).items()
                  if name.startswith("test_") and callable(test)})
