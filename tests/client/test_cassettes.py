"""The real client against recorded traffic (VCR.py cassettes in cassettes/client/).

In CI these replay with no fake partner running (pytest-recording's record
mode `none`: a request that is not in the cassette fails the test). Re-record
with `make cassettes`: each test then starts a fake partner with its
scenario and records the client against it. Cassettes prove mapping,
pagination, auth and retry *paths*; timing contracts are proven live
(PITFALLS 9), though the waits the client chose are checked here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from partnerkit.client import AsyncPartnerClient, PartnerClient
from partnerkit.client.errors import PartnerContractError
from partnerkit.contracts.cassettes import CASSETTE_ORIGIN
from partnerkit.contracts.cassettes import vcr_config as partnerkit_vcr_config
from partnerkit.simulator import FakePartner
from partnerkit.simulator.dataset import DatasetSpec, build_store
from partnerkit.simulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
SEED = 11
PAGED: dict[str, Any] = {"seed": SEED, "dataset": {"orders": 60, "page_size": 20}, "rules": []}
ORDER_ID = "ORD-000007"

ClientFor = Callable[..., PartnerClient]


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return partnerkit_vcr_config()


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(ROOT / "cassettes" / "client")


def _recording(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--record-mode") not in (None, "none")


def _target(request: pytest.FixtureRequest, stack: ExitStack,
            scenario: dict[str, Any]) -> tuple[str, tuple[str, str]]:
    """Where the client goes: a fresh fake partner when recording, else nowhere real."""
    if not _recording(request):
        return CASSETTE_ORIGIN, (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    partner = stack.enter_context(FakePartner(scenario))
    return partner.url, partner.credentials


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client_for(request: pytest.FixtureRequest, sleeps: list[float]) -> Iterator[ClientFor]:
    with ExitStack() as stack:
        def make(scenario: dict[str, Any], **options: Any) -> PartnerClient:
            url, (client_id, client_secret) = _target(request, stack, scenario)
            client = PartnerClient.from_url(url, client_id=client_id, client_secret=client_secret,
                                            sleep=sleeps.append, **options)
            return stack.enter_context(client)
        yield make


@pytest.fixture
async def async_client(request: pytest.FixtureRequest) -> AsyncIterator[AsyncPartnerClient]:
    with ExitStack() as stack:
        url, (client_id, client_secret) = _target(request, stack, PAGED)
        async with AsyncPartnerClient.from_url(url, client_id=client_id,
                                               client_secret=client_secret,
                                               page_size=20) as client:
            yield client


def _dataset_ids() -> list[str]:
    return build_store(SEED, DatasetSpec(orders=60, page_size=20)).ids()


def _assert_all_played(request: pytest.FixtureRequest, cassette: Any) -> None:
    """On replay, the client made exactly the recorded requests: none left over."""
    if not _recording(request):
        assert cassette.all_played, f"unplayed recordings in {cassette._path}"


@pytest.mark.vcr
def test_a_sync_pages_through_every_order_once(request: pytest.FixtureRequest,
                                               client_for: ClientFor, vcr: Any) -> None:
    client = client_for(PAGED, page_size=20)
    orders = list(client.iter_orders())
    assert sorted(order.id for order in orders) == sorted(_dataset_ids())
    assert len(vcr) == 1 + 3  # one token, three pages
    _assert_all_played(request, vcr)


@pytest.mark.vcr
def test_an_order_maps_to_exact_values(request: pytest.FixtureRequest, client_for: ClientFor,
                                       vcr: Any) -> None:
    raw = build_store(SEED, DatasetSpec(orders=60, page_size=20)).order(ORDER_ID)
    assert raw is not None
    order = client_for(PAGED).get_order(ORDER_ID)
    assert order.id == ORDER_ID
    assert order.currency == raw["currency"]
    assert order.subtotal == Decimal(raw["subtotal_cents"]) / 100
    assert [(line.sku, line.quantity) for line in order.lines] == [
        (line["sku"], line["qty"]) for line in raw["lines"]]
    _assert_all_played(request, vcr)


@pytest.mark.vcr
def test_a_429_and_a_503_are_retried_with_the_waits_they_ask_for(
        request: pytest.FixtureRequest, client_for: ClientFor, sleeps: list[float],
        vcr: Any) -> None:
    scenario = {**PAGED, "rules": [
        {"match": {"path": "/v1/orders/*"}, "times": 1,
         "fault": {"status": 429, "retry_after": 1}},
        {"match": {"path": "/v1/orders/*"}, "times": 1, "fault": {"status": 503}},
    ]}
    order = client_for(scenario).get_order(ORDER_ID)
    assert order.id == ORDER_ID
    assert [response["status"]["code"] for response in vcr.responses] == [200, 429, 503, 200]
    assert len(sleeps) == 2
    assert sleeps[0] >= 1.0  # Retry-After: 1 honoured (R3)
    assert 0 <= sleeps[1] < 1.0  # a 503 without Retry-After: jittered backoff (R4)
    _assert_all_played(request, vcr)


@pytest.mark.vcr
def test_an_expired_token_is_refreshed_once(request: pytest.FixtureRequest,
                                            client_for: ClientFor, vcr: Any) -> None:
    scenario = {**PAGED, "rules": [
        {"match": {"path": "/v1/orders/*"}, "times": 1, "fault": {"auth": "expire_token"}},
    ]}
    order = client_for(scenario).get_order(ORDER_ID)
    assert order.id == ORDER_ID
    paths = [recorded.path for recorded in vcr.requests]
    assert paths == ["/oauth/token", f"/v1/orders/{ORDER_ID}", "/oauth/token",
                     f"/v1/orders/{ORDER_ID}"]
    _assert_all_played(request, vcr)


@pytest.mark.vcr
@pytest.mark.parametrize(("drift", "field"), [
    ({"wrong_type": ["subtotal_cents"]}, "subtotal_cents"),
    ({"missing": ["lines[0].qty"]}, "lines[0].qty"),
    ({"unknown_enum": "state"}, "state"),
], ids=["wrong_type", "missing", "unknown_enum"])
def test_schema_drift_is_a_contract_error_naming_the_field(
        request: pytest.FixtureRequest, client_for: ClientFor, vcr: Any,
        drift: dict[str, Any], field: str) -> None:
    scenario = {**PAGED, "rules": [{"match": {"path": "/v1/orders/*"},
                                    "fault": {"schema_drift": drift}}]}
    with pytest.raises(PartnerContractError) as caught:
        client_for(scenario).get_order(ORDER_ID)
    assert caught.value.field == field
    _assert_all_played(request, vcr)


@pytest.mark.vcr
def test_an_acknowledgement_carries_its_idempotency_key(
        request: pytest.FixtureRequest, client_for: ClientFor, vcr: Any) -> None:
    client_for(PAGED).acknowledge(ORDER_ID, idempotency_key="ack-ORD-000007")
    acknowledgement = vcr.requests[-1]
    assert acknowledgement.method == "POST"
    assert acknowledgement.headers["Idempotency-Key"] == "ack-ORD-000007"
    assert acknowledgement.headers["Authorization"] == "<redacted>"
    _assert_all_played(request, vcr)


@pytest.mark.vcr
@pytest.mark.anyio
async def test_the_async_client_syncs_the_same_orders(request: pytest.FixtureRequest,
                                                      async_client: AsyncPartnerClient,
                                                      vcr: Any) -> None:
    orders = [order async for order in async_client.iter_orders()]
    assert sorted(order.id for order in orders) == sorted(_dataset_ids())
    _assert_all_played(request, vcr)
