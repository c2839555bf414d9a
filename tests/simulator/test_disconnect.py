"""disconnect faults over a real socket, on both HTTP stacks we ship, and
bounded shutdown with a hung request in flight."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from partnerkit.simulator import FakePartner, create_app, parse_scenario
from partnerkit.simulator.fault_middleware import ConnectionFaultUnsupported
from tests.conftest import authed_client


@pytest.fixture(scope="module", params=["httptools", "h11"])
def stack_partner(request: pytest.FixtureRequest) -> Iterator[FakePartner]:
    with FakePartner(http=request.param) as partner:
        yield partner


@pytest.fixture
def stack_http(stack_partner: FakePartner) -> Iterator[httpx.Client]:
    stack_partner.set_scenario({"rules": []})
    stack_partner.reset()
    with authed_client(stack_partner.url, timeout=2.0) as http:
        yield http


def _disconnect(partner: FakePartner, kind: str) -> None:
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders/*"}, "times": 1,
                                     "fault": {"disconnect": kind}}]})


def test_reset_is_a_tcp_rst_before_the_status_line(stack_partner: FakePartner,
                                                   stack_http: httpx.Client) -> None:
    _disconnect(stack_partner, "reset")
    with pytest.raises(httpx.ReadError) as caught:
        stack_http.get("/v1/orders/ORD-000001")
    cause = caught.value.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    assert isinstance(cause, ConnectionResetError) and cause.errno == errno.ECONNRESET
    entry = stack_partner.journal()[-1]
    assert entry["status"] is None and entry["fault"] == {"disconnect": "reset"}
    # The server is fine: the next request (on a new connection) is answered.
    assert stack_http.get("/v1/orders/ORD-000001").status_code == 200


def test_mid_body_dies_half_way(stack_partner: FakePartner, stack_http: httpx.Client) -> None:
    _disconnect(stack_partner, "mid_body")
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
        stack_http.get("/v1/orders/ORD-000001")
    assert stack_partner.journal()[-1]["status"] is None
    assert stack_http.get("/v1/orders/ORD-000001").status_code == 200


def test_hang_never_answers(stack_partner: FakePartner, stack_http: httpx.Client) -> None:
    _disconnect(stack_partner, "hang")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        stack_http.get("/v1/orders/ORD-000001", timeout=0.5)
    assert time.monotonic() - started >= 0.5
    entry = stack_partner.journal()[-1]
    assert entry["status"] is None and entry["fault"] == {"disconnect": "hang"}
    assert stack_http.get("/v1/orders/ORD-000001").status_code == 200


def test_hung_request_is_released_when_the_client_leaves(stack_partner: FakePartner,
                                                         stack_http: httpx.Client) -> None:
    _disconnect(stack_partner, "hang")
    with pytest.raises(httpx.ReadTimeout):
        stack_http.get("/v1/orders/ORD-000001", timeout=0.3)
    deadline = time.monotonic() + 5
    while stack_partner.journal()[-1]["duration_ms"] is None:
        assert time.monotonic() < deadline, "the hung request was never released"
        time.sleep(0.02)


def test_shutdown_is_bounded_with_a_hang_in_flight() -> None:
    partner = FakePartner({"rules": [{"match": {"path": "/v1/orders"},
                                      "fault": {"disconnect": "hang"}}]}).start()
    outcome: list[BaseException | httpx.Response] = []

    def hung_request() -> None:
        try:
            with authed_client(partner.url, timeout=60) as http:
                outcome.append(http.get("/v1/orders"))
        except BaseException as exc:
            outcome.append(exc)

    client = threading.Thread(target=hung_request)
    client.start()
    deadline = time.monotonic() + 5
    while not any(e["path"] == "/v1/orders" for e in partner.journal()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    partner.close()
    assert time.monotonic() - started < 3.0
    client.join(5)
    assert not client.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)


@pytest.mark.anyio
async def test_in_process_transport_serves_faults_that_need_no_socket() -> None:
    app = create_app(parse_scenario({"rules": [
        {"match": {"path": "/v1/orders"}, "fault": {"status": 503, "retry_after": 1}},
        {"match": {"path": "/v1/orders/ORD-000001"}, "fault": {"disconnect": "reset"}},
    ]}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partner") as http:
        token = (await http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "orderops",
            "client_secret": "orderops-secret"})).json()["access_token"]
        http.headers["authorization"] = f"Bearer {token}"
        assert (await http.get("/v1/orders")).status_code == 503
        assert (await http.get("/v1/orders/ORD-000002")).json()["order_id"] == "ORD-000002"
        with pytest.raises(ConnectionFaultUnsupported, match="real socket"):
            await http.get("/v1/orders/ORD-000001")
