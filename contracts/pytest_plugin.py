"""partnerkit's pytest plugin (registered through the `pytest11` entry point).

Fixtures:
- `fake_partner`: the fake partner on a real loopback socket, one per test
  session, reset (budgets, journal, data set) and given the test's scenario
  before each test. With `--partner-url URL` it is instead the partner
  already running there (`partnersim serve`), driven through its admin API.
  With `--partner-upstream URL` it is a fault proxy in front of that real
  partner (a sandbox): the same scenarios and contract tests, with the faults
  acted out by the proxy. Its credentials come from PARTNERKIT_CLIENT_ID and
  PARTNERKIT_CLIENT_SECRET (never from the command line, where they would show).
- `partner_client`: a `PartnerClient` wired to it, with short test timeouts,
  and `partner_settings`, those settings for `contracts.harness.observe`.
- `partner_contracts`: a `ContractCheck` for Hypothesis property tests of
  your own (session-scoped, so `@given` takes it): it serves each example's
  fault plan, judges every contract and, when a test fails, writes the
  shrunk plan once with the `partnersim serve --scenario FILE` line.

- `replay_partner`: the cassette of the test's `@pytest.mark.replay(path)`
  marker (a VCR.py cassette or a HAR file, relative to the rootdir) served
  as a fake partner for that test. A request with no recording fails the
  test, as VCR.py's record mode `none` does, naming the closest recordings.

Marker: `@pytest.mark.scenario("flaky")` loads `scenarios/flaky.yaml` (the
directory is the `partnerkit_scenarios` ini option, relative to pytest's
rootdir), else partnerkit's own scenario of that name, or a path to a file.
"""

from __future__ import annotations

import os
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
from partnerkit.simulator import FakePartner, FaultProxy, ScenarioError, load_scenario_file
from partnerkit.simulator.cassette import CassetteError
from partnerkit.simulator.server import ReplayMissError, ReplayPartner
from partnerkit.simulator.ui import ready_made_dir
from partnerkit.simulator.upstream import BadUpstream, check_upstream

EMPTY_SCENARIO: dict[str, Any] = {"name": "empty", "rules": []}
SUFFIXES = (".yaml", ".yml", ".json")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("partnerkit", "partnerkit: contract tests against a fake partner")
    group.addoption("--partner-url", default=None, metavar="URL",
                    help="use the fake partner already running at URL (partnersim serve) "
                         "instead of starting one")
    group.addoption("--partner-admin-token", default=None, metavar="TOKEN",
                    help="X-Admin-Token for the admin API of --partner-url")
    group.addoption("--partner-upstream", default=None, metavar="URL",
                    help="run against this real partner (a sandbox) through a local fault "
                         "proxy; credentials from PARTNERKIT_CLIENT_ID / "
                         "PARTNERKIT_CLIENT_SECRET")
    parser.addini("partnerkit_scenarios", "directory of named scenarios for "
                  "@pytest.mark.scenario(name)", default="scenarios")
    pytest_report.add_options(parser, group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name_or_path): run the test against the fake partner with this "
                   "scenario (a name in the partnerkit_scenarios directory, or a file path)")
    config.addinivalue_line(
        "markers", "replay(cassette): serve this cassette (a path, relative to the rootdir) "
                   "as the `replay_partner` fixture; a request with no recording fails the test")
    config.pluginmanager.register(pytest_report.RunEvidence(config), "partnerkit-evidence")


def resolve_scenario(config: pytest.Config, name_or_path: str | Path) -> Path:
    """A scenario file by path, or by name in the scenarios directory."""
    candidate = Path(name_or_path)
    root = Path(str(config.rootpath))
    for path in (candidate, root / candidate):
        if path.is_file():
            return path
    directory = root / str(config.getini("partnerkit_scenarios"))
    shipped = Path(str(ready_made_dir()))  # partnerkit's own: default, flaky, outage, ...
    for folder in (directory, shipped):
        for suffix in SUFFIXES:
            path = folder / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    known = sorted({p.stem for folder in (directory, shipped) if folder.is_dir()
                    for p in folder.glob("*") if p.suffix in SUFFIXES})
    raise ScenarioNotFound(f"partnerkit: no scenario {str(name_or_path)!r}: not a file, and "
                           f"not in {directory} nor among partnerkit's own (known: "
                           f"{', '.join(known) or 'none'}; the folder is the "
                           f"partnerkit_scenarios ini option, relative to the rootdir {root})")


class ScenarioNotFound(LookupError):
    """A `scenario` marker names no file and no scenario in the scenarios folder."""


Server = FakePartner | RemotePartner | FaultProxy


def _upstream_credentials() -> tuple[str, str]:
    return (os.environ.get("PARTNERKIT_CLIENT_ID", "orderops"),
            os.environ.get("PARTNERKIT_CLIENT_SECRET", "orderops-secret"))


@pytest.fixture(scope="session")
def partnerkit_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The session's fake partner (started here, the one at --partner-url, or a fault
    proxy in front of --partner-upstream)."""
    url = request.config.getoption("--partner-url")
    upstream = request.config.getoption("--partner-upstream")
    if url and upstream:
        raise pytest.UsageError("partnerkit: --partner-url and --partner-upstream exclude "
                                "each other")
    if upstream:
        try:
            check_upstream(upstream)
        except BadUpstream as exc:
            raise pytest.UsageError(f"partnerkit: {exc}".replace("--upstream",
                                                                 "--partner-upstream")) from None
        with FaultProxy(upstream, EMPTY_SCENARIO, credentials=_upstream_credentials()) as proxy:
            yield proxy
        return
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
def fake_partner(request: pytest.FixtureRequest, partnerkit_server: Server) -> Server:
    """The fake partner, reset and running this test's scenario (empty by default)."""
    marker = request.node.get_closest_marker("scenario")
    if marker is None:
        partnerkit_server.set_scenario(EMPTY_SCENARIO)
        evidence.set_scenario(EMPTY_SCENARIO)
    else:
        if len(marker.args) != 1:
            pytest.fail("partnerkit: use @pytest.mark.scenario(name_or_path)", pytrace=False)
        try:
            path: Path | None = resolve_scenario(request.config, marker.args[0])
            refusal = ""
        except ScenarioNotFound as error:
            path, refusal = None, str(error)
        if path is None:  # failed outside the except block: one line, no chained traceback
            pytest.fail(refusal, pytrace=False)
        scenario = load_scenario_file(path)
        try:
            if isinstance(partnerkit_server, FakePartner | FaultProxy):
                partnerkit_server.set_scenario(scenario)
            else:
                partnerkit_server.set_scenario(path)
        except ScenarioError as exc:
            if not isinstance(partnerkit_server, FaultProxy):
                raise
            pytest.skip(f"partnerkit: a fault proxy cannot act out this scenario: {exc}")
        evidence.set_scenario(scenario.source)
    partnerkit_server.reset()
    return partnerkit_server


TEST_TIMEOUT, TEST_DEADLINE = 1.0, 5.0
TEST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.5)


@pytest.fixture
def partner_client(fake_partner: Server) -> Iterator[PartnerClient]:
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
def partner_contracts(partnerkit_server: Server) -> ContractCheck:
    """Property tests of your own: `partner_contracts.check(plan, operation, run)`."""
    return ContractCheck(partnerkit_server,
                         credentials=getattr(partnerkit_server, "credentials",
                                             ("orderops", "orderops-secret")),
                         timeout=TEST_TIMEOUT, deadline=TEST_DEADLINE, retry=TEST_RETRY)


@pytest.fixture
def replay_partner(request: pytest.FixtureRequest) -> Iterator[ReplayPartner]:
    """The test's `@pytest.mark.replay(cassette)` served on a loopback socket."""
    marker = request.node.get_closest_marker("replay")
    if marker is None or len(marker.args) != 1:
        pytest.fail("partnerkit: replay_partner needs @pytest.mark.replay(cassette_path)",
                    pytrace=False)
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(str(request.config.rootpath)) / path
    try:
        partner = ReplayPartner(path, allow_misses=True)  # checked by pytest_runtest_call
    except CassetteError as exc:
        pytest.fail(f"partnerkit: cannot replay {path}:\n{exc}", pytrace=False)
    with partner:
        yield partner


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that caused a replay miss fails, whatever it caught or asserted."""
    result = yield
    partner = getattr(item, "funcargs", {}).get("replay_partner")
    if isinstance(partner, ReplayPartner):
        try:
            partner.check_misses()
        except ReplayMissError as miss:
            pytest.fail(f"partnerkit: {miss}", pytrace=False)
    return result
