"""partnerkit's pytest plugin (registered through the `pytest11` entry point).

Fixtures:
- `fake_partner`: the fake partner on a real loopback socket, one per test
  session, reset (budgets, journal, data set) and given the test's scenario
  before each test. With `--partner-url URL` it is instead the partner
  already running there (`partnersim serve`), driven through its admin API.
- `partner_client`: a `PartnerClient` wired to it, with short test timeouts,
  and `partner_settings`, those settings for `contracts.harness.observe`.
- `partner_contracts`: a `ContractCheck` for Hypothesis property tests of
  your own (session-scoped, so `@given` takes it): it serves each example's
  fault plan, judges every contract and, when a test fails, writes the
  shrunk plan once with the `partnersim serve --scenario FILE` line.

Marker: `@pytest.mark.scenario("flaky")` loads `scenarios/flaky.yaml` (the
directory is the `partnerkit_scenarios` ini option, relative to pytest's
rootdir), or a path to a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from partnerkit.client import PartnerClient, RetryPolicy
from partnerkit.contracts import evidence, pytest_report
from partnerkit.contracts.check import ContractCheck
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
    pytest_report.add_options(parser, group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name_or_path): run the test against the fake partner with this "
                   "scenario (a name in the partnerkit_scenarios directory, or a file path)")
    config.pluginmanager.register(pytest_report.RunEvidence(config), "partnerkit-evidence")


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
    raise ScenarioNotFound(f"partnerkit: no scenario {str(name_or_path)!r}: not a file, and "
                           f"not in {directory} (known: {', '.join(known) or 'none'}; the "
                           f"folder is the partnerkit_scenarios ini option, relative to "
                           f"the rootdir {root})")


class ScenarioNotFound(LookupError):
    """A `scenario` marker names no file and no scenario in the scenarios folder."""


@pytest.fixture(scope="session")
def partnerkit_server(request: pytest.FixtureRequest) -> Iterator[FakePartner | RemotePartner]:
    """The session's fake partner (started here, or the one at --partner-url)."""
    url = request.config.getoption("--partner-url")
    if url:
        remote = RemotePartner(url, admin_token=request.config.getoption("--partner-admin-token"))
        try:
            remote.health()  # fail early, and clearly, when nothing (or not us) answers there
        except RemotePartnerError as error:
            remote.close()
            pytest.exit(f"partnerkit: --partner-url {url}: {error}", returncode=4)
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
        evidence.set_scenario(EMPTY_SCENARIO)
    else:
        if len(marker.args) != 1:
            pytest.fail("partnerkit: use @pytest.mark.scenario(name_or_path)", pytrace=False)
        try:
            path = resolve_scenario(request.config, marker.args[0])
        except ScenarioNotFound as error:
            pytest.fail(str(error), pytrace=False)
        scenario = load_scenario_file(path)
        if isinstance(partnerkit_server, FakePartner):
            partnerkit_server.set_scenario(scenario)
        else:
            partnerkit_server.set_scenario(path)
        evidence.set_scenario(scenario.source)
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


@pytest.fixture(scope="session")
def partner_contracts(partnerkit_server: FakePartner | RemotePartner) -> ContractCheck:
    """Property tests of your own: `partner_contracts.check(plan, operation, run)`."""
    return ContractCheck(partnerkit_server,
                         credentials=getattr(partnerkit_server, "credentials",
                                             ("orderops", "orderops-secret")),
                         timeout=TEST_TIMEOUT, deadline=TEST_DEADLINE, retry=TEST_RETRY)
