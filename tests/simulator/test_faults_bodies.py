"""malformed and schema_drift: a broken or drifted body, observed by a plain client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from partnerkit.simulator import FakePartner


def _malformed(partner: FakePartner, http: httpx.Client, kind: str,
               path: str = "/v1/orders/ORD-000010") -> httpx.Response:
    partner.set_scenario({"rules": [{"fault": {"malformed": kind}}]})
    response = http.get(path)
    assert partner.journal()[-1]["fault"] == {"malformed": kind}
    return response


def _strict_json(body: bytes) -> Any:
    """What a careful client does: no NaN, no duplicate keys."""
    def no_constants(name: str) -> None:
        raise ValueError(f"non-standard constant {name}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    return json.loads(body.decode("utf-8"), parse_constant=no_constants,
                      object_pairs_hook=no_duplicates)


def test_truncated_is_a_complete_response_cut_at_a_token(partner: FakePartner,
                                                         http: httpx.Client) -> None:
    good = http.get("/v1/orders").content
    response = _malformed(partner, http, "truncated", "/v1/orders")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)  # complete framing
    assert good.startswith(response.content) and len(response.content) < len(good)
    assert response.content[-1:] in (b",", b":", b"[", b"{")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_invalid_json(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "invalid_json")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_error_page_with_status_200(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "html_error_page")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert b"<html>" in response.content


def test_empty_body(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "empty_body")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


def test_wrong_content_type(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "wrong_content_type")
    assert response.headers["content-type"].startswith("text/html")
    assert response.json()["order_id"] == "ORD-000010"  # the body itself is fine


def test_content_length_mismatch_cuts_the_body(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {"malformed": "content_length_mismatch"}}]})
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/orders/ORD-000010")
    assert partner.journal()[-1]["status"] is None


def test_invalid_utf8(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "invalid_utf8")
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")


def test_bom(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "bom")
    assert response.content.startswith(b"\xef\xbb\xbf")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content.decode("utf-8"))


def test_nan(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "nan")
    assert b"NaN" in response.content
    assert json.loads(response.content)  # Python's json is lenient here...
    with pytest.raises(ValueError, match="non-standard constant"):
        _strict_json(response.content)  # ...a strict parser is not


def test_duplicate_keys(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "duplicate_keys")
    assert response.json()["order_id"] == "ORD-000010"  # lenient: the last one wins
    with pytest.raises(ValueError, match="duplicate key"):
        _strict_json(response.content)


def test_deep_nesting(partner: FakePartner, http: httpx.Client) -> None:
    response = _malformed(partner, http, "deep_nesting")
    assert response.status_code == 200
    with pytest.raises(RecursionError):
        json.loads(response.content)


# --- schema drift ------------------------------------------------------------------


def _drifted(partner: FakePartner, http: httpx.Client, drift: dict[str, Any],
             path: str = "/v1/orders/ORD-000020") -> Any:
    before = http.get(path).json()
    partner.set_scenario({"rules": [{"fault": {"schema_drift": drift}}]})
    after = http.get(path)
    assert after.status_code == 200
    return before, after.json()


def test_schema_drift_missing(partner: FakePartner, http: httpx.Client) -> None:
    before, after = _drifted(partner, http, {"missing": ["currency", "lines[0].qty"]})
    assert "currency" in before and "currency" not in after
    assert "qty" not in after["lines"][0]
    assert after["order_id"] == before["order_id"]


def test_schema_drift_wrong_type(partner: FakePartner, http: httpx.Client) -> None:
    _, after = _drifted(partner, http, {"wrong_type": ["subtotal_cents", "order_id"]})
    assert isinstance(after["subtotal_cents"], str)  # a string for a number
    assert isinstance(after["order_id"], dict)  # an object for a string


def test_schema_drift_null(partner: FakePartner, http: httpx.Client) -> None:
    _, after = _drifted(partner, http, {"null": ["updated_at", "lines[*].sku"]})
    assert after["updated_at"] is None
    assert all(line["sku"] is None for line in after["lines"])


def test_schema_drift_unknown_enum(partner: FakePartner, http: httpx.Client) -> None:
    _, after = _drifted(partner, http, {"unknown_enum": "state"})
    assert after["state"] not in ("new", "paid", "shipped", "cancelled", "refunded")


def test_schema_drift_extra_fields_keep_the_rest(partner: FakePartner,
                                                 http: httpx.Client) -> None:
    before, after = _drifted(partner, http, {"extra": True})
    assert set(after) > set(before)
    assert {key: after[key] for key in before if key not in ("lines", "customer")} == {
        key: before[key] for key in before if key not in ("lines", "customer")}


def test_schema_drift_applies_to_every_order_of_a_page(partner: FakePartner,
                                                        http: httpx.Client) -> None:
    _, after = _drifted(partner, http, {"missing": ["state"]}, path="/v1/orders")
    assert after["data"] and all("state" not in order for order in after["data"])
    assert "next_cursor" in after
