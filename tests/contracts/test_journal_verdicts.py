"""Verdicts for any client, from the journal alone: `judge_journal`, `GET
/__sim/verdicts` and `partnersim verdicts`.

A deliberately bad client written with another library (requests + urllib3's
`Retry`, misconfigured to retry 404s, ignore Retry-After and never back off)
goes through the fault proxy in front of the fake partner and is caught with
the right contract IDs; partnerkit's own client, through the same faults,
passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from partnerkit.client import PartnerClient, RetryPolicy
from partnerkit.client.errors import OrderNotFound
from partnerkit.contracts.verdicts import judge_journal
from partnerkit.simulator import FakePartner, FaultProxy

PARTNERSIM = [sys.executable, "-m", "partnerkit.simulator.cli"]

# The same faults for the bad client and the good one.
FAULTS: dict[str, Any] = {"name": "judged", "rules": [
    {"match": {"path": "/v1/orders/ORD-000001"}, "times": 1,
     "fault": {"status": 429, "retry_after": 1}},
    {"match": {"path": "/v1/orders/ORD-000002"}, "times": 3, "fault": {"status": 503}},
    {"match": {"path": "/v1/orders/ORD-000003"}, "times": 1, "fault": {"auth": "expire_token"}},
]}


def entry(seq: int, at: float, path: str = "/v1/orders/ORD-1", status: int | None = 200, *,
          method: str = "GET", duration_ms: float = 1.0, **extra: Any) -> dict[str, Any]:
    headers = extra.pop("headers", {})
    return {"seq": seq, "at": at, "method": method, "path": path, "query": {},
            "headers": headers, "status": status, "rule": extra.pop("rule", None),
            "fault": extra.pop("fault", None), "duration_ms": duration_ms, **extra}


def contracts(entries: list[dict[str, Any]], **settings: Any) -> list[tuple[str, int | None]]:
    return [(f.contract, f.seq) for f in judge_journal(entries, **settings).violations]


# --- judge_journal on journals written by hand ---------------------------------------------


def test_a_clean_journal_holds_every_contract() -> None:
    verdict = judge_journal([entry(1, 0.0, "/oauth/token", method="POST"),
                             entry(2, 0.1), entry(3, 0.2, "/v1/orders/ORD-2")])
    assert verdict.passed and verdict.operations == 2 and verdict.requests == 2
    assert "every contract holds" in verdict.render()


def test_r1_a_retried_404_and_the_operations_it_ends() -> None:
    assert contracts([entry(1, 0.0, status=404), entry(2, 0.01, status=404)]) == [("R1", 2)]
    # the same request after a success is a new operation, not a retry
    assert contracts([entry(1, 0.0), entry(2, 0.01)]) == []
    # and after the window, too
    assert contracts([entry(1, 0.0, status=404), entry(2, 60.0, status=404)]) == []


def test_r1_an_invalid_body_is_not_retried() -> None:
    broken = entry(1, 0.0, fault={"malformed": "invalid_json"})
    assert contracts([broken, entry(2, 0.5)]) == [("R1", 2)]
    cut = entry(1, 0.0, fault={"malformed": "content_length_mismatch"})
    assert contracts([cut, entry(2, 0.5)]) == []


def test_a1_a_401_is_retried_once_after_a_refresh() -> None:
    refreshed = [entry(1, 0.0, status=401), entry(2, 0.01, "/oauth/token", method="POST"),
                 entry(3, 0.02)]
    assert contracts(refreshed) == []
    assert contracts([entry(1, 0.0, status=401), entry(2, 0.01)]) == [("A1", 2)]
    twice = [entry(1, 0.0, status=401), entry(2, 0.01, "/oauth/token", method="POST"),
             entry(3, 0.02, status=401), entry(4, 0.03, "/oauth/token", method="POST"),
             entry(5, 0.04)]
    assert contracts(twice) == [("A1", 5)]


def test_r2_attempts_are_bounded() -> None:
    journal = [entry(n, n * 0.1, status=503) for n in range(1, 6)]
    assert ("R2", 5) in contracts(journal, max_attempts=4)
    assert ("R2", 5) not in contracts(journal, max_attempts=5)


@pytest.mark.parametrize(("header", "gap", "violated"), [
    ("1", 0.3, True), ("1", 1.0, False), ("2", 1.5, True),
])
def test_r3_retry_after_is_honoured(header: str, gap: float, violated: bool) -> None:
    journal = [entry(1, 0.0, status=429, retry_after=header), entry(2, gap)]
    assert (("R3", 2) in contracts(journal)) is violated


def test_r3_reads_the_fault_when_the_header_was_not_journaled() -> None:
    journal = [entry(1, 0.0, status=503, fault={"status": 503, "retry_after": 2}),
               entry(2, 0.5)]
    assert contracts(journal) == [("R3", 2)]


def test_r4_some_backoff_after_failures_without_retry_after() -> None:
    at_once = [entry(1, 0.0, status=503), entry(2, 0.0015, status=503), entry(3, 0.003)]
    assert contracts(at_once) == [("R4", 2)]
    # full jitter may draw one short wait: one retry that waited is enough
    jittered = [entry(1, 0.0, status=503), entry(2, 0.002, status=503), entry(3, 0.2)]
    assert contracts(jittered) == []
    assert contracts(at_once, min_backoff_ms=0.1) == []


def test_r5_the_same_idempotency_key_on_every_retry_of_a_post() -> None:
    path = "/v1/orders/ORD-1/acknowledgements"
    same = [entry(1, 0.0, path, 503, method="POST", headers={"idempotency-key": "k"}),
            entry(2, 0.5, path, 201, method="POST", headers={"idempotency-key": "k"})]
    assert contracts(same) == []
    keyless = [entry(1, 0.0, path, 503, method="POST"), entry(2, 0.5, path, 201, method="POST")]
    assert contracts(keyless) == [("R5", 2)]
    changed = [entry(1, 0.0, path, 503, method="POST", headers={"idempotency-key": "k1"}),
               entry(2, 0.5, path, 201, method="POST", headers={"idempotency-key": "k2"})]
    assert contracts(changed) == [("R5", 2)]


def test_r6_no_request_while_a_bucket_says_wait() -> None:
    bucket = {"rate_limit": {"limit": 1, "per_s": 1}}
    journal = [entry(1, 0.0, "/v1/orders/ORD-1", rule=0, fault=bucket),
               entry(2, 0.1, "/v1/orders/ORD-2", 429, rule=0, fault=bucket, retry_after="1"),
               entry(3, 0.2, "/v1/orders/ORD-3", 429, rule=0, fault=bucket, retry_after="1"),
               entry(4, 0.3, "/v1/orders/ORD-4", 200, rule=None)]  # not in the bucket
    assert contracts(journal) == [("R6", 3)]


def test_grouping_by_request_id_and_idempotency_key() -> None:
    journal = [entry(1, 0.0, status=503, headers={"x-request-id": "a"}),
               entry(2, 0.0, status=503, headers={"x-request-id": "b"}),
               entry(3, 0.3, headers={"x-request-id": "a"}),
               entry(4, 0.3, headers={"x-request-id": "b"})]
    verdict = judge_journal(journal)
    assert verdict.operations == 2 and verdict.passed


# --- the bad client and the good one, through the fault proxy ------------------------------------


@pytest.fixture
def proxied() -> Iterator[tuple[FakePartner, FaultProxy]]:
    with FakePartner() as upstream, FaultProxy(upstream.url, FAULTS) as proxy:
        yield upstream, proxy


def _bad_client(url: str) -> None:
    """requests + urllib3 Retry as too many people configure it: retry 404s too, never
    look at Retry-After, never back off, retry POSTs without a key."""
    retry = Retry(total=5, status_forcelist=[404, 429, 500, 502, 503, 504],
                  respect_retry_after_header=False, backoff_factor=0, allowed_methods=None,
                  raise_on_status=False)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        token = session.post(url + "/oauth/token", timeout=5, data={
            "grant_type": "client_credentials", "client_id": "orderops",
            "client_secret": "orderops-secret"}).json()["access_token"]
        session.headers["authorization"] = f"Bearer {token}"
        for order_id in ("ORD-999999", "ORD-000001", "ORD-000002"):
            session.get(f"{url}/v1/orders/{order_id}", timeout=5)


def test_a_bad_client_is_caught_with_the_right_ids(
        proxied: tuple[FakePartner, FaultProxy]) -> None:
    _upstream, proxy = proxied
    _bad_client(proxy.url)
    done = subprocess.run([*PARTNERSIM, "verdicts", "--url", proxy.url, "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    found = {(v["contract"], v["operation"].split(" ")[1]) for v in report["violations"]}
    assert ("R1", "/v1/orders/ORD-999999") in found  # a 404 retried
    assert ("R2", "/v1/orders/ORD-999999") in found  # six attempts
    assert ("R3", "/v1/orders/ORD-000001") in found  # Retry-After: 1 ignored
    assert ("R4", "/v1/orders/ORD-000002") in found  # three 503s, no backoff
    seqs = {v["seq"] for v in report["violations"]}
    journal = {e["seq"]: e for e in proxy.journal()}
    assert seqs <= set(journal)  # every piece of evidence is a journal entry
    text = subprocess.run([*PARTNERSIM, "verdicts", "--url", proxy.url],
                          capture_output=True, text=True, timeout=60, check=False).stdout
    assert "R1: GET /v1/orders/ORD-999999: a 404 (seq" in text
    assert text.rstrip().splitlines()[-1].endswith("violation(s) of R1, R2, R3, R4")


def test_the_real_client_passes_through_the_same_faults(
        proxied: tuple[FakePartner, FaultProxy]) -> None:
    _upstream, proxy = proxied
    policy = RetryPolicy(max_attempts=4, backoff_base=0.2, backoff_max=1.0)
    with PartnerClient.from_url(proxy.url, client_id="orderops", client_secret="orderops-secret",
                                timeout=2.0, deadline=10.0, retry=policy) as client:
        with pytest.raises(OrderNotFound):
            client.get_order("ORD-999999")
        for order_id in ("ORD-000001", "ORD-000002", "ORD-000003"):
            assert client.get_order(order_id).id == order_id
        client.acknowledge("ORD-000004", idempotency_key="ack-4")
    with httpx.Client(base_url=proxy.url) as http:
        answer = http.get("/__sim/verdicts", params={"max_attempts": 4})
    assert answer.status_code == 200
    report = answer.json()
    assert report["violations"] == [] and report["passed"] is True
    assert report["operations"] == 5
    statuses = [e["status"] for e in proxy.journal() if e["path"] != "/oauth/token"]
    assert statuses.count(503) == 3 and statuses.count(429) == 1 and statuses.count(401) == 1


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "Expecting property name"),
    ('{"entries": {}}', "expected a journal"),
    ('{"entries": [{"seq": 1}]}', "entries[0]: missing at, method, path, status"),
    ('{"entries": []}', "no request to judge"),  # a client that never came must not pass
])
def test_a_bad_journal_file_is_one_located_line_and_exit_2(
        tmp_path: Path, content: str, message: str) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(content)
    done = subprocess.run([*PARTNERSIM, "verdicts", str(journal)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and str(journal) in done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_journal_file_is_judged(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"entries": [entry(1, 0.0, status=404),
                                               entry(2, 0.01, status=404)]}))
    done = subprocess.run([*PARTNERSIM, "verdicts", str(journal)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert done.stdout.startswith("R1: GET /v1/orders/ORD-1: a 404 (seq 1) is never retried")
    missing = subprocess.run([*PARTNERSIM, "verdicts", str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=30, check=False)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_bad_settings_are_refused_by_the_admin_api(
        proxied: tuple[FakePartner, FaultProxy]) -> None:
    _upstream, proxy = proxied
    with httpx.Client(base_url=proxy.url) as http:
        assert http.get("/__sim/verdicts", params={"max_attempts": "x"}).status_code == 400
        assert http.get("/__sim/verdicts", params={"max_attempts": 0}).status_code == 400
