"""The fault engine's decision core: which rule acts on a request, and how.

Pure bookkeeping, no I/O: rules are tried in order, budgets are spent under
one lock (so a `times: 1` rule fires once however many requests race for
it), and every random choice comes from a generator seeded by the scenario
seed, the rule and the request itself, never from timing.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from partnerkit.simulator.scenario import Fault, Latency, RateLimit, Rule, Scenario
from partnerkit.simulator.timing import Moment

#: Distinct requests remembered for seeded decisions before the memory starts afresh.
#: Each is a 16-byte digest of its key, not the key: a key is as long as the request's
#: query, and remembering 20,000 keys of 60 KB had held 1.2 GB (~100 bytes each now).
MAX_REMEMBERED_REQUESTS = 100_000


class RequestInfo(NamedTuple):
    """What a rule can match on. A named tuple: one is made per request, and a
    frozen dataclass took three times as long to make."""

    method: str
    path: str
    query_string: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names

    @property
    def key(self) -> str:
        """Identical requests share a key: method, path, query in any order."""
        pairs = sorted(parse_qsl(self.query_string, keep_blank_values=True))
        return f"{self.method} {self.path}?{urlencode(pairs)}"


@dataclass(frozen=True)
class BucketOutcome:
    """A rate-limit rule's answer: allowed or not, and the bucket's figures."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int


@dataclass(frozen=True)
class Decision:
    rule: Rule
    fault: Fault
    rng: random.Random  # seeded for this rule and this request
    bucket: BucketOutcome | None = None
    moment: Moment | None = None  # a timed rule: where in its window/flap/ramp it acted


class TokenBucket:
    """Capacity `limit`, starting full, refilling `limit` tokens per `per_s` seconds."""

    def __init__(self, spec: RateLimit, now: float) -> None:
        self.limit = spec.limit
        self.rate = spec.limit / spec.per_s
        self.tokens = float(spec.limit)
        self.updated = now

    def take(self, now: float) -> BucketOutcome:
        self.tokens = min(self.limit, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return BucketOutcome(True, self.limit, int(self.tokens), 0)
        wait = (1 - self.tokens) / self.rate
        return BucketOutcome(False, self.limit, 0, max(1, math.ceil(wait - 1e-9)))


def seeded_rng(seed: int, rule_index: int, request_key: str, occurrence: int) -> random.Random:
    digest = hashlib.blake2b(
        f"{seed}|{rule_index}|{request_key}|{occurrence}".encode(), digest_size=16
    ).digest()
    return random.Random(int.from_bytes(digest, "big"))


def sample_latency_ms(latency: Latency, rng: random.Random) -> float:
    if latency.fixed_ms is not None:
        return latency.fixed_ms
    if latency.uniform_ms is not None:
        return rng.uniform(*latency.uniform_ms)
    assert latency.lognormal is not None
    median, sigma = latency.lognormal
    return min(600_000.0, median * math.exp(rng.gauss(0.0, sigma)))


def is_idle_cursor_drift(rule: Rule, request: RequestInfo) -> bool:
    """A cursor-drift rule (a one_of of them too) lets a request without a cursor
    pass: it spends no `times`."""
    return rule.needs_cursor and "cursor" not in request.query


def pick_fault(rule: Rule, rng: random.Random) -> Fault:
    """The rule's fault, or the seeded choice among its `one_of`."""
    if rule.fault is not None:
        return rule.fault
    weights = [choice.weight for choice in rule.one_of]
    return rng.choices(rule.one_of, weights=weights)[0].fault


def request_digest(key: str) -> bytes:
    """16 bytes standing for a request key in the occurrence counts."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _matches(rule: Rule, request: RequestInfo) -> bool:
    match = rule.match
    if match.method is not None and request.method not in match.method:
        return False
    if match.path is not None and not match.path.match(request.path):
        return False
    for name, wanted in match.query:
        if request.query.get(name) != wanted:
            return False
    return all(request.headers.get(name) == wanted for name, wanted in match.headers)


class FaultEngine:
    """Budgets and seeded choices for one scenario; `reset()` refills them."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.monotonic) -> None:
        self.scenario = scenario
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            count = len(self.scenario.rules)
            self._matched = [0] * count
            self._acted = [0] * count
            self._seen: dict[bytes, int] = {}
            self.forgotten = 0
            self._buckets: dict[int, TokenBucket] = {}
            self.started = self._clock()  # timed rules count from here

    def spent(self) -> list[int]:
        """How many requests each rule has acted on (for the admin API)."""
        with self._lock:
            return list(self._acted)

    def decide(self, request: RequestInfo) -> Decision | None:
        rules = self.scenario.rules
        if not rules:
            return None
        with self._lock:
            occurrence: int | None = None
            for rule in rules:
                if not _matches(rule, request):
                    continue
                moment = None
                if rule.timing is not None:
                    moment = rule.timing.moment(self._clock() - self.started)
                    if moment is None:
                        continue  # outside its window, or the service is up: no match
                index = rule.index
                self._matched[index] += 1  # `after` and `every` count every match
                eligible = self._matched[index] - rule.after
                if eligible <= 0 or (eligible - 1) % rule.every:
                    continue
                if self._is_idle_cursor_drift(rule, request):
                    continue
                if rule.times is not None and self._acted[index] >= rule.times:
                    continue
                if occurrence is None:
                    occurrence = self._occurrence(request.key)
                rng = seeded_rng(self.scenario.seed, index, request.key, occurrence)
                probability = rule.probability
                if moment is not None and moment.probability is not None:
                    probability = moment.probability
                if probability is not None and rng.random() >= probability:
                    continue
                self._acted[index] += 1
                fault = self._pick(rule, rng)
                bucket = None
                if isinstance(fault.action, RateLimit):
                    bucket = self._bucket(index, fault.action).take(self._clock())
                return Decision(rule, fault, rng, bucket, moment)
        return None

    def candidates(self, request: RequestInfo,
                   elapsed: float) -> list[tuple[Rule, Moment | None]]:
        """The rules that match `request` `elapsed` seconds into the scenario, in order,
        each with its timed moment: what a shared backend spends budgets on."""
        found: list[tuple[Rule, Moment | None]] = []
        for rule in self.scenario.rules:
            if not _matches(rule, request):
                continue
            moment = None
            if rule.timing is not None:
                moment = rule.timing.moment(elapsed)
                if moment is None:
                    continue
            found.append((rule, moment))
        return found

    def touches(self, request: RequestInfo) -> bool:
        """Whether any rule matches `request` (at any moment of its timing): a request no
        rule matches spends no budget, count, occurrence or bucket."""
        return any(_matches(rule, request) for rule in self.scenario.rules)

    _is_idle_cursor_drift = staticmethod(is_idle_cursor_drift)

    def _occurrence(self, key: str) -> int:
        if len(self._seen) >= MAX_REMEMBERED_REQUESTS:
            self.forgotten += len(self._seen)
            self._seen.clear()
        digest = request_digest(key)
        seen = self._seen.get(digest, 0)
        self._seen[digest] = seen + 1
        return seen

    def stats(self) -> dict[str, int]:
        """For health: the distinct requests remembered, and how many were forgotten."""
        with self._lock:
            return {"engine_requests_remembered": len(self._seen),
                    "engine_requests_forgotten": self.forgotten}

    _pick = staticmethod(pick_fault)

    def _bucket(self, index: int, spec: RateLimit) -> TokenBucket:
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = TokenBucket(spec, self._clock())
        return bucket
