"""Rules in time: an outage window, a flapping service, a ramp towards a fall-over.

A rule may carry `window: {from_s, for_s}` (active only then), `flap: {up_s,
down_s[, offset_s]}` (a service that is up for `up_s`, then down — the rule
active — for `down_s`, over and over) and `ramp: {over_s, probability: [a, b]}`
or `ramp: {over_s, latency_ms: [a, b]}` (rising linearly from a to b over
`over_s`, then staying at b). Seconds count from the scenario's start or its
last reset, on the fake partner's clock (simulator.clock), so a run is
deterministic given the clock and the seed — and on virtual time, a
five-minute outage costs nothing to wait out. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from partnerkit.simulator.scenario_source import Where

MAX_SECONDS = 31_536_000.0  # a year
MAX_RAMP_LATENCY_MS = 600_000.0
TIMING_KEYS = ("window", "flap", "ramp")


class Checker(Protocol):
    """What parsing needs of the scenario checker (simulator.scenario)."""

    def fail(self, path: Where, message: str) -> None: ...

    def keys(self, value: Mapping[str, Any], path: Where, allowed: tuple[str, ...]) -> None: ...

    def mapping(self, value: Any, path: Where) -> Mapping[str, Any] | None: ...

    def number(self, value: Any, path: Where, low: float, high: float,
               low_open: bool = False) -> float | None: ...


@dataclass(frozen=True)
class Window:
    from_s: float
    for_s: float


@dataclass(frozen=True)
class Flap:
    up_s: float
    down_s: float
    offset_s: float = 0.0


@dataclass(frozen=True)
class Ramp:
    over_s: float
    probability: tuple[float, float] | None = None
    latency_ms: tuple[float, float] | None = None


@dataclass(frozen=True)
class Timing:
    """When a rule is active, and how its ramp stands at a moment."""

    window: Window | None = None
    flap: Flap | None = None
    ramp: Ramp | None = None

    def moment(self, elapsed_s: float) -> Moment | None:
        """The rule at `elapsed_s` into the scenario: None while it is inactive."""
        details: dict[str, Any] = {"at_s": round(elapsed_s, 3)}
        ramp_start = 0.0
        if self.window is not None:
            window = self.window
            if not window.from_s <= elapsed_s < window.from_s + window.for_s:
                return None
            details["window"] = {"from_s": window.from_s, "for_s": window.for_s}
            ramp_start = window.from_s
        if self.flap is not None:
            flap = self.flap
            period = flap.up_s + flap.down_s
            shifted = elapsed_s - flap.offset_s
            if shifted < 0:
                return None
            cycle, within = divmod(shifted, period)
            if within < flap.up_s:
                return None
            details["flap"] = {"cycle": int(cycle), "down_for_s": round(within - flap.up_s, 3)}
        probability = latency_ms = None
        if self.ramp is not None:
            progress = min(1.0, max(0.0, (elapsed_s - ramp_start) / self.ramp.over_s))
            if self.ramp.probability is not None:
                start, end = self.ramp.probability
                probability = start + (end - start) * progress
            if self.ramp.latency_ms is not None:
                start, end = self.ramp.latency_ms
                latency_ms = start + (end - start) * progress
            details["ramp"] = {"progress": round(progress, 4),
                               **({"probability": round(probability, 4)}
                                  if probability is not None else {}),
                               **({"latency_ms": round(latency_ms, 1)}
                                  if latency_ms is not None else {})}
        return Moment(details, probability, latency_ms)


@dataclass(frozen=True)
class Moment:
    """An active timed rule at one instant: what the journal says, and the ramp's values."""

    details: Mapping[str, Any]
    probability: float | None = None
    latency_ms: float | None = None


def _pair(check: Checker, value: Any, path: Where, high: float) -> tuple[float, float] | None:
    if not isinstance(value, list) or len(value) != 2:
        check.fail(path, "expected [from, to]: a list of two numbers")
        return None
    first = check.number(value[0], (*path, 0), 0, high)
    second = check.number(value[1], (*path, 1), 0, high)
    return (first, second) if first is not None and second is not None else None


def parse_timing(check: Checker, spec: Mapping[str, Any], path: Where,
                 has_probability: bool) -> Timing | None:
    """The `window`, `flap` and `ramp` of one rule (None when it has none)."""
    window = flap = ramp = None
    if "window" in spec:
        where = (*path, "window")
        value = check.mapping(spec["window"], where)
        if value is not None:
            check.keys(value, where, ("from_s", "for_s"))
            start = check.number(value.get("from_s", 0), (*where, "from_s"), 0, MAX_SECONDS)
            length = _required_seconds(check, value, where, "for_s")
            if start is not None and length is not None:
                window = Window(start, length)
    if "flap" in spec:
        where = (*path, "flap")
        value = check.mapping(spec["flap"], where)
        if value is not None:
            check.keys(value, where, ("up_s", "down_s", "offset_s"))
            up = _required_seconds(check, value, where, "up_s")
            down = _required_seconds(check, value, where, "down_s")
            offset = check.number(value.get("offset_s", 0), (*where, "offset_s"), 0, MAX_SECONDS)
            if up is not None and down is not None and offset is not None:
                flap = Flap(up, down, offset)
    if "ramp" in spec:
        ramp = _parse_ramp(check, spec["ramp"], (*path, "ramp"), has_probability)
    if window is None and flap is None and ramp is None:
        return None
    return Timing(window, flap, ramp)


def _required_seconds(check: Checker, value: Mapping[str, Any], path: Where,
                      key: str) -> float | None:
    if key not in value:
        check.fail(path, f"missing required key '{key}'")
        return None
    return check.number(value[key], (*path, key), 0, MAX_SECONDS, low_open=True)


def _parse_ramp(check: Checker, value: Any, path: Where, has_probability: bool) -> Ramp | None:
    spec = check.mapping(value, path)
    if spec is None:
        return None
    check.keys(spec, path, ("over_s", "probability", "latency_ms"))
    over = _required_seconds(check, spec, path, "over_s")
    kinds = [key for key in ("probability", "latency_ms") if key in spec]
    if len(kinds) != 1:
        check.fail(path, "a ramp needs exactly one of 'probability' or 'latency_ms'")
        return None
    if kinds == ["probability"] and has_probability:
        check.fail((*path, "probability"),
                   "the rule has a 'probability' already: ramp it, or fix it, not both")
        return None
    high = 1.0 if kinds == ["probability"] else MAX_RAMP_LATENCY_MS
    pair = _pair(check, spec[kinds[0]], (*path, kinds[0]), high)
    if over is None or pair is None:
        return None
    return Ramp(over, probability=pair if kinds == ["probability"] else None,
                latency_ms=pair if kinds == ["latency_ms"] else None)
