"""Hypothesis strategies for the partner contract: payloads and fault plans.

Built from small parts rather than filtered, so they shrink well:
`fault_plans()` is made of `rules()`, made of `faults()`; each is usable on
its own. Payload strategies are written by hand from the JSON Schemas
(hypothesis-jsonschema breaks on current Hypothesis, PITFALLS 16), and a
test checks every generated payload against those schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

STATES = ("new", "paid", "shipped", "cancelled", "refunded")
API_PATHS = ("/v1/orders", "/v1/orders/*", "/v1/orders/*/acknowledgements", "/oauth/token")

# --- payloads ---------------------------------------------------------------------------

_ids = st.from_regex(r"[A-Z]{3}-[0-9]{1,9}", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
                max_size=20)
_cents = st.integers(min_value=0, max_value=10**12)
_offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)),
                            timezone(timedelta(hours=-5, minutes=-30))])


@st.composite
def rfc3339_timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
    zone = draw(_offsets)
    aware = moment.replace(tzinfo=UTC).astimezone(zone)
    text = aware.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


def order_lines() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "sku": _text, "qty": st.integers(min_value=1, max_value=10**6),
        "unit_price_cents": _cents,
    }, optional={"warehouse": _text})


def partner_orders() -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid partner ORDER payloads, unknown extra fields included."""
    customer = st.fixed_dictionaries({"id": _text, "email": st.none() | _text})
    return st.fixed_dictionaries({
        "order_id": _ids,
        "state": st.sampled_from(STATES),
        "subtotal_cents": _cents,
        "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True),
        "customer": customer,
        "lines": st.lists(order_lines(), min_size=1, max_size=6),
        "updated_at": rfc3339_timestamps(),
    }, optional={"loyalty_tier": _text, "x_partner_note": st.none() | _text})


# Each way to break a field: (what to put there, or None to delete it).
_WRONG: dict[str, list[Any]] = {
    "string": [123, 1.5, True, None, [], {"value": "x"}],
    "integer": ["12", 1.5, True, None, [], {}],
    "object": ["x", 1, [], None],
    "array": ["x", 1, {}, None],
}
_FIELDS: dict[str, tuple[str, list[Any]]] = {  # field -> (type, extra invalid values)
    "order_id": ("string", [""]),
    "state": ("string", ["on_hold", "PAID", ""]),
    "subtotal_cents": ("integer", [-1]),
    "currency": ("string", ["eur", "EURO", ""]),
    "customer": ("object", []),
    "customer.id": ("string", [""]),
    "customer.email": ("string-or-null", [123, ""]),
    "lines": ("array", [[]]),
    "updated_at": ("string", ["2026-11-20T10:15:00", "yesterday", "2026-13-40T00:00:00Z"]),
}
_LINE_FIELDS: dict[str, tuple[str, list[Any]]] = {
    "sku": ("string", [""]),
    "qty": ("integer", [0, -3]),
    "unit_price_cents": ("integer", [-1]),
}


def _set(payload: dict[str, Any], path: list[str | int], value: Any) -> None:
    parent: Any = payload
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


_DELETE = object()


@st.composite
def broken_partner_orders(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(payload, field path): a valid ORDER with one field broken — missing,
    the wrong type, null, out of range or an unknown enum — and where."""
    payload = copy.deepcopy(draw(partner_orders()))
    if draw(st.booleans()):
        index = draw(st.integers(min_value=0, max_value=len(payload["lines"]) - 1))
        name = draw(st.sampled_from(sorted(_LINE_FIELDS)))
        kind, extra = _LINE_FIELDS[name]
        path: list[str | int] = ["lines", index, name]
        field = f"lines[{index}].{name}"
        if draw(st.integers(0, 4)) == 0:
            path, field = ["lines", index], f"lines[{index}]"
            kind, extra = "object", []
    else:
        field = draw(st.sampled_from(sorted(_FIELDS)))
        kind, extra = _FIELDS[field]
        path = list(field.split("."))
    wrong: list[Any] = [123, [], {}] if kind == "string-or-null" else _WRONG[kind]
    # Deleting a list item leaves a shorter, still valid list: not a break.
    removal: list[Any] = [] if isinstance(path[-1], int) else [_DELETE]
    value = draw(st.sampled_from([*removal, *wrong, *extra]))
    _set(payload, path, value)
    return payload, field


# --- fault plans ---------------------------------------------------------------------------

_MALFORMED = ("truncated", "invalid_json", "html_error_page", "empty_body", "wrong_content_type",
              "content_length_mismatch", "invalid_utf8", "bom", "nan", "duplicate_keys",
              "deep_nesting")
_DRIFT_PATHS = ("state", "currency", "subtotal_cents", "customer", "customer.email",
                "customer.id", "lines", "lines[0].qty", "lines[*].sku", "updated_at",
                "order_id")


def latencies(max_ms: int = 400) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda ms: {"fixed_ms": ms}, st.integers(0, max_ms)),
        st.builds(lambda a, b: {"uniform_ms": [min(a, b), max(a, b)]},
                  st.integers(0, max_ms), st.integers(0, max_ms)),
        st.builds(lambda median, sigma: {"lognormal": {"median_ms": median, "sigma": sigma}},
                  st.integers(1, max_ms // 4 or 1), st.sampled_from([0.1, 0.5, 1.0])),
    )


ACTION_KINDS = ("status", "rate_limit", "malformed", "schema_drift", "cursor_drift",
                "disconnect", "auth")


def actions(kinds: Sequence[str] = ACTION_KINDS, *, max_retry_after_s: int = 2,
            rate_windows_s: Sequence[float] = (0.5, 1, 2)) -> st.SearchStrategy[dict[str, Any]]:
    """One fault action of each of `kinds` (by default every kind the fake partner knows);
    Retry-After up to `max_retry_after_s`, rate-limit windows from `rate_windows_s`."""
    retry_after = st.one_of(st.integers(0, max_retry_after_s),
                            st.builds(lambda n: f"http-date:{n}",
                                      st.integers(0, max_retry_after_s)))
    status = st.builds(
        lambda code, ra: {"status": code, **({"retry_after": ra} if ra is not None else {})},
        st.sampled_from([429, 500, 502, 503, 504, 400, 403, 404, 409, 422]),
        st.none() | retry_after)
    drift = st.one_of(
        st.builds(lambda key, paths: {key: paths},
                  st.sampled_from(["missing", "wrong_type", "null"]),
                  st.lists(st.sampled_from(_DRIFT_PATHS), min_size=1, max_size=2, unique=True)),
        st.just({"unknown_enum": "state"}),
        st.just({"extra": True}),
    )
    cursor = st.one_of(
        st.builds(lambda n: {"insert": n}, st.integers(1, 5)),
        st.builds(lambda n: {"update": n}, st.integers(1, 5)),
        st.builds(lambda n: {"delete": n}, st.integers(1, 5)),
        st.just({"repeat": True}),
        st.just({"expire": True}),
    )
    by_kind: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "status": status,
        "rate_limit": st.builds(lambda limit, per_s: {"rate_limit": {"limit": limit,
                                                                     "per_s": per_s}},
                                st.integers(1, 5), st.sampled_from(list(rate_windows_s))),
        "malformed": st.builds(lambda kind: {"malformed": kind}, st.sampled_from(_MALFORMED)),
        "schema_drift": st.builds(lambda d: {"schema_drift": d}, drift),
        "cursor_drift": st.builds(lambda c: {"cursor_drift": c}, cursor),
        "disconnect": st.builds(lambda kind: {"disconnect": kind},
                                st.sampled_from(["reset", "mid_body", "hang"])),
        "auth": st.just({"auth": "expire_token"}),
    }
    unknown = set(kinds) - set(by_kind)
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {ACTION_KINDS}")
    return st.one_of(*(by_kind[kind] for kind in kinds))


@st.composite
def faults(draw: st.DrawFn, max_latency_ms: int = 400,
           kinds: Sequence[str] = ACTION_KINDS, *, max_retry_after_s: int = 2,
           max_dribble_ms: int = 40, rate_windows_s: Sequence[float] = (0.5, 1, 2)
           ) -> dict[str, Any]:
    """A fault: an action, a latency, a dribble, or an action with a latency."""
    # Each optional extra sits on the branch the shrinker moves away from
    # (integers shrink to 0): a minimal plan carries no needless latency.
    fault: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 3:
        fault["latency"] = draw(latencies(max_latency_ms))
    if draw(st.integers(0, 5)) == 5:
        fault["dribble"] = {"chunk_bytes": draw(st.integers(64, 512)),
                            "interval_ms": draw(st.integers(1, max_dribble_ms))}
    if not fault or draw(st.booleans()):
        fault.update(draw(actions(kinds, max_retry_after_s=max_retry_after_s,
                                  rate_windows_s=rate_windows_s)))
    return fault


@st.composite
def rules(draw: st.DrawFn, /, max_latency_ms: int = 400, paths: Sequence[str] = API_PATHS,
          kinds: Sequence[str] = ACTION_KINDS, *, timed: bool = False,
          timed_over_s: float = 60.0, **timing: Any) -> dict[str, Any]:
    """One rule: a match on one of `paths`, a budget, and a fault (or a one_of mix);
    `timing` (max_retry_after_s, max_dribble_ms, rate_windows_s) scales its waits;
    `timed` adds windows, flaps and ramps over `timed_over_s` seconds."""
    rule: dict[str, Any] = {"match": {"path": draw(st.sampled_from(list(paths)))},
                            "times": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        rule["after"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 3)) == 3:
        rule["every"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) == 3:
        rule["probability"] = draw(st.sampled_from([0.25, 0.5, 0.75, 1.0]))
    if draw(st.integers(0, 4)) == 4:
        choices = draw(st.lists(faults(max_latency_ms, kinds, **timing), min_size=2,
                                max_size=3))
        rule["fault"] = {"one_of": [{"weight": draw(st.integers(1, 3)), **choice}
                                    for choice in choices]}
    else:
        rule["fault"] = draw(faults(max_latency_ms, kinds, **timing))
    if timed and draw(st.integers(0, 2)) == 2:  # shrinks away from a timed rule
        rule.update(draw(timings(over_s=timed_over_s)))
    return rule


def timings(over_s: float = 60.0) -> st.SearchStrategy[dict[str, Any]]:
    """A rule's place in time: an outage window, a flapping service, or a ramp,
    with spans up to `over_s` seconds (simulator.timing)."""
    span = st.integers(1, max(1, int(over_s)))
    return st.one_of(
        st.builds(lambda start, length: {"window": {"from_s": start, "for_s": length}},
                  st.integers(0, max(0, int(over_s) // 2)), span),
        st.builds(lambda up, down: {"flap": {"up_s": up, "down_s": down}}, span, span),
        st.builds(lambda over, end: {"ramp": {"over_s": over, "latency_ms": [0, end]}},
                  span, st.integers(0, int(over_s * 100))),
    )


@st.composite
def fault_plans(draw: st.DrawFn, /, max_rules: int = 4, orders: int = 12, page_size: int = 5,
                paths: Sequence[str] = API_PATHS,
                kinds: Sequence[str] = ACTION_KINDS, *, max_latency_ms: int = 400,
                **timing: Any) -> dict[str, Any]:
    """A whole scenario mixing fault kinds (every one by default) with budgets.
    Budgets are small (`times` at most 3) and delays short, so one example
    runs in well under a second against a client with sub-second timeouts.
    `paths` and `kinds` aim the chaos at what a test exercises."""
    return {
        "name": "generated",
        "seed": draw(st.integers(0, 2**16)),
        "dataset": {"orders": orders, "page_size": page_size},
        "rules": draw(st.lists(rules(max_latency_ms, paths=paths, kinds=kinds, **timing),
                               max_size=max_rules)),
    }


#: Waits at the scale a production partner has them, for runs on virtual time
#: (contracts.virtual): latencies to 12 s, Retry-After to 60 s, slow bodies,
#: rate-limit windows of a minute.
PRODUCTION_TIMING: dict[str, Any] = {"max_latency_ms": 12_000, "max_retry_after_s": 60,
                                     "max_dribble_ms": 2_000, "rate_windows_s": (1, 10, 60),
                                     "timed": True, "timed_over_s": 60.0}


def production_fault_plans(**options: Any) -> st.SearchStrategy[dict[str, Any]]:
    """`fault_plans()` at production timing (PRODUCTION_TIMING), token TTL 3,600 s."""
    return fault_plans(**{**PRODUCTION_TIMING, **options}).map(
        lambda plan: {**plan, "dataset": {**plan["dataset"], "token_ttl_s": 3600}})
