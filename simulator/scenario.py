"""The scenario model: how the fake partner is scripted, parsed and validated.

`parse_scenario` takes YAML/JSON text, a file or a dict and either returns a
frozen `Scenario` or raises `ScenarioError` listing *every* problem with its
JSON path and, for text, its line. Nothing else in the simulator interprets
raw scenario data.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from partnerkit.simulator.dataset import MAX_ORDERS, DatasetSpec
from partnerkit.simulator.glob import MAX_GLOB_CHARS, PathGlob
from partnerkit.simulator.http_fields import (
    header_name_problem,
    header_value_problem,
    unsendable_text,
)
from partnerkit.simulator.scenario_source import (
    MAX_SOURCE_BYTES,
    Located,
    Problem,
    SourceError,
    Where,
    format_path,
    load_source,
)
from partnerkit.simulator.timing import TIMING_KEYS, Timing, parse_timing

MALFORMED_KINDS = (
    "truncated", "invalid_json", "html_error_page", "empty_body", "wrong_content_type",
    "content_length_mismatch", "invalid_utf8", "bom", "nan", "duplicate_keys", "deep_nesting",
)
DISCONNECT_KINDS = ("reset", "mid_body", "hang")
#: Entries of one `one_of` (40,000 had taken 6 s to parse; a handful is the real use).
MAX_ONE_OF = 100
#: Orders one cursor_drift request may insert, update or delete.
MAX_DRIFT_COUNT = 1000
AUTH_KINDS = ("expire_token",)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Fault keys that decide the answer; at most one per fault. latency and dribble combine.
ACTIONS = (
    "status", "rate_limit", "malformed", "schema_drift", "cursor_drift", "disconnect", "auth",
)
T = TypeVar("T")
MAX_COUNT = 1_000_000_000
MAX_DELAY_MS = 600_000
FIELD_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\[(\d+|\*)\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[(\d+|\*)\])*)*$"
)


class ScenarioError(ValueError):
    """A scenario was refused; `problems` lists every error and where it is."""

    def __init__(self, problems: list[Problem], source: str = "scenario") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(problem.render(source) for problem in problems))


# --- the model -------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    fixed_ms: float | None = None
    uniform_ms: tuple[float, float] | None = None
    lognormal: tuple[float, float] | None = None  # (median_ms, sigma)


@dataclass(frozen=True)
class Dribble:
    chunk_bytes: int
    interval_ms: float


@dataclass(frozen=True)
class StatusFault:
    status: int
    retry_after: int | str | None = None  # seconds, or "http-date:N"
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RateLimit:
    limit: int
    per_s: float


@dataclass(frozen=True)
class Malformed:
    kind: str


@dataclass(frozen=True)
class SchemaDrift:
    missing: tuple[str, ...] = ()
    wrong_type: tuple[str, ...] = ()
    null: tuple[str, ...] = ()
    unknown_enum: str | None = None
    extra: bool = False


@dataclass(frozen=True)
class CursorDrift:
    insert: int = 0
    update: int = 0
    delete: int = 0
    repeat: bool = False
    expire: bool = False


@dataclass(frozen=True)
class Disconnect:
    kind: str


@dataclass(frozen=True)
class ExpireToken:
    pass


Action = StatusFault | RateLimit | Malformed | SchemaDrift | CursorDrift | Disconnect | ExpireToken


@dataclass(frozen=True)
class Fault:
    """What a rule does to one request: an optional delay, an optional slow
    body, and at most one action. `raw` is the declaration, for the journal."""

    raw: Mapping[str, Any]
    latency: Latency | None = None
    dribble: Dribble | None = None
    action: Action | None = None

    # What the fault is, asked of the fault (as h11 asks its tables), not
    # re-derived by everyone who needs to know.

    @property
    def needs_cursor(self) -> bool:
        """Acts only on a request that carries a cursor (cursor_drift)."""
        return isinstance(self.action, CursorDrift)

    @property
    def changes_dataset(self) -> bool:
        """Changes the simulated data set, which replay and the proxy do not have."""
        action = self.action
        return isinstance(action, CursorDrift) and bool(action.insert or action.update
                                                        or action.delete)

    @property
    def keeps_answer(self) -> bool:
        """The answer is the partner's own, byte for byte (only delayed or slowed)."""
        return self.action is None


@dataclass(frozen=True)
class WeightedFault:
    weight: float
    fault: Fault


@dataclass(frozen=True)
class Match:
    method: frozenset[str] | None = None
    path: PathGlob | None = None
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    index: int
    name: str | None
    match: Match
    fault: Fault | None  # exactly one of fault / one_of is set
    one_of: tuple[WeightedFault, ...] = ()
    times: int | None = None
    after: int = 0
    every: int = 1
    probability: float | None = None
    timing: Timing | None = None  # window / flap / ramp (simulator.timing)

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every fault the rule may act with: its fault, or each of its one_of."""
        return (self.fault,) if self.fault is not None else tuple(c.fault for c in self.one_of)

    @property
    def needs_cursor(self) -> bool:
        """Every fault it may pick needs a cursor: a cursorless request passes it by."""
        return all(fault.needs_cursor for fault in self.faults)

    @property
    def label(self) -> str | int:
        return self.name if self.name is not None else self.index


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int = 0
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    rules: tuple[Rule, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)



# --- validation -----------------------------------------------------------------


class _Checker:
    """Collects problems while converting plain data to the model."""

    def __init__(self, located: Located) -> None:
        self.located = located
        self.problems: list[Problem] = []

    def fail(self, path: Where, message: str) -> None:
        self.problems.append(Problem(format_path(path), message, self.located.line_of(path)))

    def keys(self, value: Mapping[str, Any], path: Where, allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                self.fail((*path, key), f"unknown key '{key}'{suggestion} "
                                        f"(expected one of: {', '.join(allowed)})")

    def mapping(self, value: Any, path: Where) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"expected a mapping, got {_kind(value)}")
        return None

    def integer(self, value: Any, path: Where, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.fail(path, f"must be between {low} and {high}, got {_shown(value)}")
            return None
        return value

    def number(self, value: Any, path: Where, low: float, high: float,
               low_open: bool = False) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_kind(value)}")
            return None
        # A huge int compares exactly; math.isfinite() would raise OverflowError on it.
        if (isinstance(value, float) and not math.isfinite(value)) or value > high \
                or value < low or (low_open and value == low):
            bound = f"greater than {low}" if low_open else f"at least {low}"
            self.fail(path, f"must be {bound} and at most {high}, got {_shown(value)}")
            return None
        return float(value)

    def string(self, value: Any, path: Where) -> str | None:
        if isinstance(value, str):
            return value
        self.fail(path, f"expected a string, got {_kind(value)}")
        return None

    def choice(self, value: Any, path: Where, options: tuple[str, ...]) -> str | None:
        text = self.string(value, path)
        if text is not None and text not in options:
            hint = difflib.get_close_matches(text, options, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            self.fail(path, f"'{text}' is not one of: {', '.join(options)}{suggestion}")
            return None
        return text


def _shown(value: float) -> str:
    """A number for a message: a huge int is described, not printed (str() would raise)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _required(check: _Checker, spec: Mapping[str, Any], path: Where, key: str,
              convert: Callable[[Any, Where], T | None]) -> T | None:
    """A required key, checked with `convert`; a missing one is an error at its mapping."""
    if key not in spec:
        check.fail(path, f"missing required key '{key}'")
        return None
    return convert(spec[key], (*path, key))


def _parse_latency(check: _Checker, value: Any, path: Where) -> Latency | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("fixed_ms", "uniform_ms", "lognormal"))
    present = [key for key in ("fixed_ms", "uniform_ms", "lognormal") if key in spec]
    if len(present) != 1:
        check.fail(path, "needs exactly one of fixed_ms, uniform_ms, lognormal")
        return None
    key = present[0]
    if key == "fixed_ms":
        fixed = check.number(spec[key], (*path, key), 0, MAX_DELAY_MS)
        return None if fixed is None else Latency(fixed_ms=fixed)
    if key == "uniform_ms":
        bounds = spec[key]
        if not isinstance(bounds, list) or len(bounds) != 2:
            check.fail((*path, key), "expected a list of two numbers [low, high]")
            return None
        low = check.number(bounds[0], (*path, key, 0), 0, MAX_DELAY_MS)
        high = check.number(bounds[1], (*path, key, 1), 0, MAX_DELAY_MS)
        if low is None or high is None:
            return None
        if low > high:
            check.fail((*path, key), f"low ({low}) is above high ({high})")
            return None
        return Latency(uniform_ms=(low, high))
    params = check.mapping(spec[key], (*path, key))
    if params is None:
        return None
    check.keys(params, (*path, key), ("median_ms", "sigma"))
    median = _required(check, params, (*path, key), "median_ms",
                       lambda v, p: check.number(v, p, 0, MAX_DELAY_MS, low_open=True))
    sigma = _required(check, params, (*path, key), "sigma", lambda v, p: check.number(v, p, 0, 5))
    if median is None or sigma is None:
        return None
    return Latency(lognormal=(median, sigma))


def _parse_dribble(check: _Checker, value: Any, path: Where) -> Dribble | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("chunk_bytes", "interval_ms"))
    chunk = _required(check, spec, path, "chunk_bytes",
                      lambda v, p: check.integer(v, p, 1, 1_000_000))
    interval = _required(check, spec, path, "interval_ms",
                         lambda v, p: check.number(v, p, 0, 60_000))
    if chunk is None or interval is None:
        return None
    return Dribble(chunk, interval)


def _parse_status(check: _Checker, fault: Mapping[str, Any], path: Where) -> StatusFault | None:
    status = check.integer(fault["status"], (*path, "status"), 400, 599)
    retry_after: int | str | None = None
    if "retry_after" in fault:
        raw = fault["retry_after"]
        where = (*path, "retry_after")
        if isinstance(raw, str):
            match = re.fullmatch(r"http-date:(\d{1,9})", raw)
            if match is None:
                check.fail(where, "expected whole seconds or 'http-date:N' (N seconds from now)")
            else:
                retry_after = raw
        else:
            retry_after = check.integer(raw, where, 0, 86_400 * 365)
    headers: list[tuple[str, str]] = []
    if "headers" in fault:
        spec = check.mapping(fault["headers"], (*path, "headers"))
        for name, value in (spec or {}).items():
            if (problem := header_name_problem(name)) is not None:
                check.fail((*path, "headers", name), problem)
            elif not isinstance(value, str | int | float) or isinstance(value, bool):
                check.fail((*path, "headers", name), f"expected a string, got {_kind(value)}")
            elif (problem := header_value_problem(str(value))) is not None:
                check.fail((*path, "headers", name), problem)
            else:
                headers.append((name.lower(), str(value)))
    body = fault.get("body")
    if body is not None and (problem := _unsendable(body)) is not None:
        check.fail((*path, "body"), problem)
    if status is None:
        return None
    return StatusFault(status, retry_after, body, tuple(headers))


def _unsendable(value: Any) -> str | None:
    """Why a fault body (text, or data sent as JSON) cannot be sent, or None."""
    if isinstance(value, str):
        return unsendable_text(value)
    if isinstance(value, dict):
        return next((problem for key, item in value.items()
                     if (problem := _unsendable(key) or _unsendable(item)) is not None), None)
    if isinstance(value, list):
        return next((problem for item in value if (problem := _unsendable(item)) is not None),
                    None)
    return None


def _parse_rate_limit(check: _Checker, value: Any, path: Where) -> RateLimit | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("limit", "per_s"))
    limit = _required(check, spec, path, "limit", lambda v, p: check.integer(v, p, 1, 1_000_000))
    per_s = _required(check, spec, path, "per_s",
                      lambda v, p: check.number(v, p, 0, 86_400, low_open=True))
    if limit is None or per_s is None:
        return None
    return RateLimit(limit, per_s)


def _field_paths(check: _Checker, value: Any, path: Where) -> tuple[str, ...]:
    if not isinstance(value, list):
        check.fail(path, f"expected a list of field paths, got {_kind(value)}")
        return ()
    paths = []
    for index, item in enumerate(value):
        text = check.string(item, (*path, index))
        if text is not None and not FIELD_PATH.match(text):
            check.fail((*path, index), f"'{text}' is not a field path like lines[0].qty")
        elif text is not None:
            paths.append(text)
    return tuple(paths)


def _parse_schema_drift(check: _Checker, value: Any, path: Where) -> SchemaDrift | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("missing", "wrong_type", "null", "unknown_enum", "extra"))
    if not spec:
        check.fail(path, "needs at least one of missing, wrong_type, null, unknown_enum, extra")
    lists = {key: _field_paths(check, spec[key], (*path, key))
             for key in ("missing", "wrong_type", "null") if key in spec}
    unknown_enum = None
    if "unknown_enum" in spec:
        unknown_enum = check.string(spec["unknown_enum"], (*path, "unknown_enum"))
        if unknown_enum is not None and not FIELD_PATH.match(unknown_enum):
            check.fail((*path, "unknown_enum"), f"'{unknown_enum}' is not a field path")
    extra = spec.get("extra", False)
    if not isinstance(extra, bool):
        check.fail((*path, "extra"), f"expected true or false, got {_kind(extra)}")
        extra = False
    return SchemaDrift(lists.get("missing", ()), lists.get("wrong_type", ()),
                       lists.get("null", ()), unknown_enum, extra)


def _parse_cursor_drift(check: _Checker, value: Any, path: Where) -> CursorDrift | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("insert", "update", "delete", "repeat", "expire"))
    if not spec:
        check.fail(path, "needs one of insert, update, delete, repeat, expire")
    counts = {key: check.integer(spec[key], (*path, key), 1, MAX_DRIFT_COUNT)
              for key in ("insert", "update", "delete") if key in spec}
    flags = {}
    for key in ("repeat", "expire"):
        if key in spec:
            if spec[key] is not True:
                check.fail((*path, key), "expected true (leave the key out to turn it off)")
            flags[key] = True
    return CursorDrift(counts.get("insert") or 0, counts.get("update") or 0,
                       counts.get("delete") or 0, flags.get("repeat", False),
                       flags.get("expire", False))


def _parse_fault(check: _Checker, value: Any, path: Where) -> Fault | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("latency", "dribble", *ACTIONS, "retry_after", "body", "headers"))
    actions = [key for key in ACTIONS if key in spec]
    if len(actions) > 1:
        check.fail(path, f"at most one of {', '.join(ACTIONS)} per fault "
                         f"(found {', '.join(actions)}); use one_of to mix them")
    if not actions and "latency" not in spec and "dribble" not in spec:
        check.fail(path, "a fault needs latency, dribble or one of: " + ", ".join(ACTIONS))
    for extra in ("retry_after", "body", "headers"):
        if extra in spec and "status" not in spec:
            check.fail((*path, extra), f"'{extra}' only goes with 'status'")
    errors_before = len(check.problems)
    latency = _parse_latency(check, spec["latency"], (*path, "latency")) if "latency" in spec \
        else None
    dribble = _parse_dribble(check, spec["dribble"], (*path, "dribble")) if "dribble" in spec \
        else None
    action: Action | None = None
    for key in actions[:1]:
        where = (*path, key)
        if key == "status":
            action = _parse_status(check, spec, path)
        elif key == "rate_limit":
            action = _parse_rate_limit(check, spec[key], where)
        elif key == "malformed":
            kind = check.choice(spec[key], where, MALFORMED_KINDS)
            action = Malformed(kind) if kind else None
        elif key == "schema_drift":
            action = _parse_schema_drift(check, spec[key], where)
        elif key == "cursor_drift":
            action = _parse_cursor_drift(check, spec[key], where)
        elif key == "disconnect":
            kind = check.choice(spec[key], where, DISCONNECT_KINDS)
            action = Disconnect(kind) if kind else None
        elif key == "auth":
            action = ExpireToken() if check.choice(spec[key], where, AUTH_KINDS) else None
    if len(check.problems) > errors_before:
        return None
    return Fault(dict(spec), latency, dribble, action)


def _parse_one_of(check: _Checker, value: Any, path: Where) -> tuple[WeightedFault, ...]:
    if not isinstance(value, list) or not value:
        check.fail(path, "expected a non-empty list of {weight, <fault>} entries")
        return ()
    if len(value) > MAX_ONE_OF:
        check.fail(path, f"at most {MAX_ONE_OF} entries, got {len(value)}")
        return ()
    choices = []
    for index, item in enumerate(value):
        where = (*path, index)
        spec = check.mapping(item, where)
        if spec is None:
            continue
        weight = check.number(spec.get("weight", 1), (*where, "weight"), 0, 1_000_000,
                              low_open=True)
        fault = _parse_fault(check, {k: v for k, v in spec.items() if k != "weight"}, where)
        if weight is not None and fault is not None:
            choices.append(WeightedFault(weight, fault))
    return tuple(choices)


def _parse_match(check: _Checker, value: Any, path: Where) -> Match:
    spec = check.mapping(value, path)
    if spec is None:
        return Match()
    check.keys(spec, path, ("method", "path", "query", "headers"))
    methods = None
    if "method" in spec:
        raw = spec["method"]
        items = raw if isinstance(raw, list) else [raw]
        chosen = set()
        for index, item in enumerate(items):
            where = (*path, "method", index) if isinstance(raw, list) else (*path, "method")
            text = check.string(item, where)
            if text is not None and text.upper() not in METHODS:
                check.fail(where, f"'{text}' is not an HTTP method ({', '.join(METHODS)})")
            elif text is not None:
                chosen.add(text.upper())
        methods = frozenset(chosen)
    glob = None
    if "path" in spec:
        text = check.string(spec["path"], (*path, "path"))
        if text is not None and not text.startswith("/"):
            check.fail((*path, "path"), f"'{text}' must start with /")
        elif text is not None and len(text) > MAX_GLOB_CHARS:
            check.fail((*path, "path"), f"a glob of at most {MAX_GLOB_CHARS} characters, "
                                        f"got {len(text)}")
        elif text is not None:
            glob = PathGlob(text)
    pairs: dict[str, list[tuple[str, str]]] = {"query": [], "headers": []}
    for key in ("query", "headers"):
        if key not in spec:
            continue
        subset = check.mapping(spec[key], (*path, key))
        for name, wanted in (subset or {}).items():
            if isinstance(wanted, bool) or not isinstance(wanted, str | int | float):
                check.fail((*path, key, name), f"expected a string, got {_kind(wanted)}")
                continue
            pairs[key].append((name.lower() if key == "headers" else name, str(wanted)))
    return Match(methods, glob, tuple(pairs["query"]), tuple(pairs["headers"]))


RULE_KEYS = ("name", "match", "fault", "times", "after", "every", "probability", *TIMING_KEYS)


def _parse_rule(check: _Checker, value: Any, index: int) -> Rule | None:
    path: Where = ("rules", index)
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, RULE_KEYS)
    errors_before = len(check.problems)
    name = check.string(spec["name"], (*path, "name")) if "name" in spec else None
    match = _parse_match(check, spec.get("match", {}), (*path, "match"))
    fault: Fault | None = None
    one_of: tuple[WeightedFault, ...] = ()
    if "fault" not in spec:
        check.fail(path, "missing required key 'fault'")
    else:
        fault_spec = check.mapping(spec["fault"], (*path, "fault"))
        if fault_spec is not None and "one_of" in fault_spec:
            if len(fault_spec) > 1:
                check.fail((*path, "fault"), "one_of cannot be combined with other fault keys")
            one_of = _parse_one_of(check, fault_spec["one_of"], (*path, "fault", "one_of"))
        elif fault_spec is not None:
            fault = _parse_fault(check, fault_spec, (*path, "fault"))
    times = check.integer(spec["times"], (*path, "times"), 1, MAX_COUNT) if "times" in spec \
        else None
    after = check.integer(spec.get("after", 0), (*path, "after"), 0, MAX_COUNT)
    every = check.integer(spec.get("every", 1), (*path, "every"), 1, MAX_COUNT)
    probability = None
    if "probability" in spec:
        probability = check.number(spec["probability"], (*path, "probability"), 0, 1)
    timing = parse_timing(check, spec, path, has_probability="probability" in spec)
    if len(check.problems) > errors_before:
        return None
    return Rule(index, name, match, fault, one_of, times, after or 0, every or 1, probability,
                timing)


def _parse_dataset(check: _Checker, value: Any) -> DatasetSpec:
    path: Where = ("dataset",)
    spec = check.mapping(value, path)
    if spec is None:
        return DatasetSpec()
    check.keys(spec, path, ("orders", "page_size", "token_ttl_s"))
    default = DatasetSpec()
    orders = check.integer(spec.get("orders", default.orders), (*path, "orders"), 0, MAX_ORDERS)
    page_size = check.integer(spec.get("page_size", default.page_size), (*path, "page_size"),
                              1, 200)
    ttl = check.integer(spec.get("token_ttl_s", default.token_ttl_s), (*path, "token_ttl_s"),
                        1, 86_400 * 365)
    return DatasetSpec(orders or 0, page_size or default.page_size, ttl or default.token_ttl_s)


def _build(located: Located, source: str) -> Scenario:
    check = _Checker(located)
    top = check.mapping(located.data, ())
    if top is None:
        raise ScenarioError(check.problems, source)
    check.keys(top, (), ("name", "description", "seed", "dataset", "rules"))
    name = check.string(top.get("name", "unnamed"), ("name",)) or "unnamed"
    if "description" in top:
        check.string(top["description"], ("description",))
    seed = check.integer(top.get("seed", 0), ("seed",), 0, 2**63 - 1) or 0
    dataset = _parse_dataset(check, top.get("dataset", {}))
    rules: list[Rule] = []
    if "rules" not in top:
        check.fail((), "missing required key 'rules' (use rules: [] for a well-behaved partner)")
    elif not isinstance(top["rules"], list):
        check.fail(("rules",), f"expected a list of rules, got {_kind(top['rules'])}")
    else:
        if len(top["rules"]) > 1000:
            check.fail(("rules",), "at most 1000 rules")
        for index, item in enumerate(top["rules"][:1000]):
            rule = _parse_rule(check, item, index)
            if rule is not None:
                rules.append(rule)
    if check.problems:
        raise ScenarioError(check.problems, source)
    return Scenario(name, seed, dataset, tuple(rules), dict(top))


def parse_scenario(value: str | bytes | Mapping[str, Any] | Scenario,
                   source: str = "scenario") -> Scenario:
    """A Scenario from YAML/JSON text, a dict, or a Scenario (returned as is)."""
    if isinstance(value, Scenario):
        return value
    if isinstance(value, Mapping):
        located = Located(value)
    else:
        try:
            located = load_source(value)
        except SourceError as exc:
            raise ScenarioError([exc.problem], source) from None
    return _build(located, source)


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every error names this file."""
    file = Path(path)
    try:
        with file.open("rb") as stream:  # no more than the limit: /dev/zero never ends
            data = stream.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([Problem("$", f"cannot read: {exc.strerror or exc}")],
                            str(file)) from None
    return parse_scenario(data, source=str(file))


def empty_scenario(seed: int = 0) -> Scenario:
    """A well-behaved partner: no rules."""
    return Scenario("empty", seed, DatasetSpec(), (), {"name": "empty", "seed": seed, "rules": []})
