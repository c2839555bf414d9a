"""Fixtures shared by the whole suite: a fake partner on a real socket."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from hypothesis import HealthCheck, settings

from partnerkit.simulator import FakePartner
from tests.redis_server import RedisServer

# Explicit Hypothesis profiles (PITFALLS 15: CI=true would load Hypothesis'
# own "ci" profile). The fast one is derandomized, so `make test` is
# deterministic; `make soak` runs the randomised deep one with a printed seed.
settings.register_profile("partnerkit-fast", max_examples=30, derandomize=True, database=None,
                          deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("partnerkit-soak", max_examples=400, derandomize=False,
                          database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("PARTNERKIT_HYPOTHESIS_PROFILE", "partnerkit-fast"))


def fetch_token(http: httpx.Client, client_id: str = "orderops",
                client_secret: str = "orderops-secret") -> str:
    response = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_secret": client_secret,
    })
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@contextmanager
def authed_client(url: str, timeout: float = 5.0) -> Iterator[httpx.Client]:
    """A plain httpx client holding a valid bearer token of the partner at `url`."""
    with httpx.Client(base_url=url, timeout=timeout) as http:
        http.headers["authorization"] = f"Bearer {fetch_token(http)}"
        yield http


@pytest.fixture(scope="module")
def partner_server(request: pytest.FixtureRequest) -> Iterator[FakePartner]:
    """The module's fake partner; PARTNERKIT_TEST_STATE=redis runs it on a real Redis
    (the shared-state backend) instead of memory, e.g. for the live contract suite."""
    if os.environ.get("PARTNERKIT_TEST_STATE") == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        with FakePartner(state=redis.url, state_prefix=f"test:{uuid.uuid4().hex}:") as partner:
            yield partner
        return
    with FakePartner() as partner:
        yield partner


@pytest.fixture
def partner(partner_server: FakePartner) -> Iterator[FakePartner]:
    """The module's fake partner, with an empty scenario and journal for each test."""
    partner_server.set_scenario({"rules": []})
    partner_server.reset()
    yield partner_server


@pytest.fixture
def http(partner: FakePartner) -> Iterator[httpx.Client]:
    with authed_client(partner.url) as client:
        partner.clear_journal()
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the whole session (skips without the binary, not in CI)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
