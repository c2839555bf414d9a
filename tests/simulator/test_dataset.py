"""The generated data set: realistic, deterministic from the seed, keyset-paged."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import datetime

import httpx

from partnerkit.simulator import FakePartner
from tests.conftest import authed_client


def _all_pages(http: httpx.Client, **params: str) -> list[httpx.Response]:
    responses = [http.get("/v1/orders", params=params)]
    while responses[-1].json()["next_cursor"] is not None:
        cursor = responses[-1].json()["next_cursor"]
        responses.append(http.get("/v1/orders", params={**params, "cursor": cursor}))
        assert len(responses) < 1000
    return responses


def _bytes_of_a_sync(url: str) -> list[bytes]:
    with authed_client(url) as http:
        pages = _all_pages(http, limit="40")
        return [page.content for page in pages] + [http.get("/v1/orders/ORD-000042").content]


def test_same_seed_gives_byte_identical_responses_across_instances() -> None:
    scenario = {"seed": 7, "dataset": {"orders": 120}, "rules": []}
    with FakePartner(scenario) as first, FakePartner(scenario) as second:
        assert _bytes_of_a_sync(first.url) == _bytes_of_a_sync(second.url)


def test_different_seeds_give_different_data() -> None:
    with FakePartner({"seed": 1, "rules": []}) as one, FakePartner({"seed": 2, "rules": []}) as two:
        assert _bytes_of_a_sync(one.url) != _bytes_of_a_sync(two.url)


def test_same_seed_gives_the_same_bytes_in_another_process() -> None:
    code = (
        "import hashlib, sys; from partnerkit.simulator.dataset import *; "
        "s = build_store(11, DatasetSpec(orders=300)); "
        "p = s.page(None, None, 300); sys.stdout.write(hashlib.sha256(p.prefix).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                       env={"PYTHONHASHSEED": str(n)}).stdout
        for n in (1, 2)
    }
    assert len(digests) == 1


def test_data_set_is_realistic(http: httpx.Client) -> None:
    orders = [order for page in _all_pages(http, limit="200") for order in page.json()["data"]]
    assert len(orders) == 250
    assert len({order["order_id"] for order in orders}) == 250
    states = Counter(order["state"] for order in orders)
    assert set(states) == {"new", "paid", "shipped", "cancelled", "refunded"}
    assert len({order["currency"] for order in orders}) >= 4
    line_counts = Counter(len(order["lines"]) for order in orders)
    assert max(line_counts) >= 4 and line_counts[1] < 250
    assert any(order["customer"]["email"] is None for order in orders)  # guest checkouts
    for order in orders:
        assert order["subtotal_cents"] == sum(
            line["qty"] * line["unit_price_cents"] for line in order["lines"])
    moments = sorted(datetime.fromisoformat(o["updated_at"].replace("Z", "+00:00"))
                     for o in orders)
    assert (moments[-1] - moments[0]).days >= 7  # spread over days


def test_keyset_pagination_serves_every_order_once_in_order(http: httpx.Client) -> None:
    pages = _all_pages(http, limit="33")
    orders = [order for page in pages for order in page.json()["data"]]
    keys = [(order["updated_at"], order["order_id"]) for order in orders]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys) == 250
    assert len(pages) == 8  # ceil(250 / 33)
    assert all(len(page.json()["data"]) == 33 for page in pages[:-1])


def test_default_page_size_comes_from_the_data_set(partner: FakePartner) -> None:
    partner.set_scenario({"dataset": {"orders": 30, "page_size": 12}, "rules": []})
    with authed_client(partner.url) as http:
        assert len(http.get("/v1/orders").json()["data"]) == 12


def test_updated_since_is_inclusive(http: httpx.Client) -> None:
    orders = http.get("/v1/orders", params={"limit": "200"}).json()["data"]
    pivot = orders[100]["updated_at"]
    since = [order for page in _all_pages(http, updated_since=pivot, limit="50")
             for order in page.json()["data"]]
    assert since[0]["updated_at"] == pivot
    assert all(order["updated_at"] >= pivot for order in since)
    expected = sum(1 for page in _all_pages(http, limit="200") for order in page.json()["data"]
                   if order["updated_at"] >= pivot)
    assert len(since) == expected


def test_bad_query_parameters_are_400(http: httpx.Client) -> None:
    assert http.get("/v1/orders", params={"limit": "0"}).status_code == 400
    assert http.get("/v1/orders", params={"limit": "201"}).status_code == 400
    assert http.get("/v1/orders", params={"limit": "ten"}).status_code == 400
    assert http.get("/v1/orders", params={"updated_since": "yesterday"}).status_code == 400
    bad = http.get("/v1/orders", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_cursor"
    cursor = http.get("/v1/orders", params={"limit": "5"}).json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert http.get("/v1/orders", params={"cursor": tampered}).json()["error"] == "invalid_cursor"
