"""partnerkit's pytest plugin (registered through the `pytest11` entry point).

Fixtures:
- `fake_partner`: the fake partner on a real loopback socket, one per test
  session, reset (budgets, journal, data set) and given the test's scenario
  before each test. With `--partner-url URL` it is instead the partner
  already running there (`partnersim serve`), driven through its admin API.
- `partner_client`: a `PartnerClient` wired to it, with short test timeouts,
  and `partner_settings`, those settings for `contracts.harness.observe`.

Marker: `@pytest.mark.scenario("flaky")` loads `scenarios/flaky.yaml` (the
directory is the `partnerkit_scenarios` ini option), or a path to a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from partnerkit.client import PartnerClient, RetryPolicy
from partnerkit.contracts.harness import client_settings
from partnerkit.contracts.remote import RemotePartner, RemotePartnerError
from partnerkit.contracts.verdicts import ClientSettings
from partnerkit.simulator import FakePartner, load_scenario_file

EMPTY_SCENARIO: dict[str, Any] = {"name": "empty", "rules": []}
SUFFIXES = (".yaml", ".yml", ".json")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("partnerkit", "partnerkit: contract tests against a fake partner")
    group.addoption("--partner-url", default=None, metavar="URL",
                    help="use the fake partner already running at URL (partnersim serve) "
                         "instead of starting one")
    group.addoption("--partner-admin-token", default=None, metavar="TOKEN",
                    help="X-Admin-Token for the admin API of --partner-url")
    parser.addini("partnerkit_scenarios", "directory of named scenarios for "
                  "@pytest.mark.scenario(name)", default="scenarios")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name_or_path): run the test against the fake partner with this "
                   "scenario (a name in the partnerkit_scenarios directory, or a file path)")


def resolve_scenario(config: pytest.Config, name_or_path: str | Path) -> Path:
    """A scenario file by path, or by name in the scenarios directory."""
    candidate = Path(name_or_path)
    root = Path(str(config.rootpath))
    for path in (candidate, root / candidate):
        if path.is_file():
            return path
    directory = root / str(config.getini("partnerkit_scenarios"))
    for suffix in SUFFIXES:
        path = directory / f"{name_or_path}{suffix}"
        if path.is_file():
            return path
    known = sorted(p.stem for p in directory.glob("*") if p.suffix in SUFFIXES) \
        if directory.is_dir() else []
    raise pytest.UsageError(f"partnerkit: no scenario {str(name_or_path)!r}: not a file, and "
                            f"not in {directory} (known: {', '.join(known) or 'none'})")


@pytest.fixture(scope="session")
def partnerkit_server(request: pytest.FixtureRequest) -> Iterator[FakePartner | RemotePartner]:
    """The session's fake partner (started here, or the one at --partner-url)."""
    url = request.config.getoption("--partner-url")
    if url:
        remote = RemotePartner(url, admin_token=request.config.getoption("--partner-admin-token"))
        try:
            remote.health()  # fail early, and clearly, when nothing (or not us) answers there
        except RemotePartnerError as exc:
            remote.close()
            raise pytest.UsageError(f"partnerkit: --partner-url {url}: {exc}") from None
        yield remote
        remote.close()
        return
    with FakePartner(EMPTY_SCENARIO) as partner:
        yield partner


@pytest.fixture
def fake_partner(request: pytest.FixtureRequest,
                 partnerkit_server: FakePartner | RemotePartner) -> FakePartner | RemotePartner:
    """The fake partner, reset and running this test's scenario (empty by default)."""
    marker = request.node.get_closest_marker("scenario")
    if marker is None:
        partnerkit_server.set_scenario(EMPTY_SCENARIO)
    else:
        if len(marker.args) != 1:
            raise pytest.UsageError("partnerkit: use @pytest.mark.scenario(name_or_path)")
        path = resolve_scenario(request.config, marker.args[0])
        if isinstance(partnerkit_server, FakePartner):
            partnerkit_server.set_scenario(load_scenario_file(path))
        else:
            partnerkit_server.set_scenario(path)
    partnerkit_server.reset()
    return partnerkit_server


TEST_TIMEOUT, TEST_DEADLINE = 1.0, 5.0
TEST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.5)


@pytest.fixture
def partner_client(fake_partner: FakePartner | RemotePartner) -> Iterator[PartnerClient]:
    """A PartnerClient for the fake partner: 1 s per attempt, 5 s per operation."""
    client_id, client_secret = getattr(fake_partner, "credentials",
                                       ("orderops", "orderops-secret"))
    with PartnerClient.from_url(
        fake_partner.url, client_id=client_id, client_secret=client_secret,
        timeout=TEST_TIMEOUT, deadline=TEST_DEADLINE, retry=TEST_RETRY,
    ) as client:
        yield client


@pytest.fixture
def partner_settings() -> ClientSettings:
    """The settings `partner_client` runs with, for `contracts.harness.observe`."""
    return client_settings(timeout=TEST_TIMEOUT, deadline=TEST_DEADLINE, retry=TEST_RETRY)
