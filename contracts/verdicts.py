"""The behaviour contracts T1 ... E1 as verdicts over what happened.

A verdict takes an `Observation` — the operation's outcome (value or
exception), how long it took, the client's settings and the fake partner's
journal entries for it — and returns the violations it finds, each naming
the contract, the journal entry and why ("R3: attempt 2 came 0.41 s after
a 429 with Retry-After: 1"). Verdicts judge any client by its traffic: they
read the journal, not the client's code, and allow the stated tolerances
(T1's +0.25 s) and no more.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from partnerkit.client.errors import (
    AuthenticationError,
    CursorDriftError,
    PartnerContractError,
    PartnerError,
    PartnerUnavailable,
    RateLimited,
)
from partnerkit.client.models import Order, OrderLine, OrderStatus
from partnerkit.contracts import evidence
from partnerkit.simulator.journal_entry import JournalEntryJSON

# Verdicts from the journal alone (any client), re-exported: contracts.verdicts.judge_journal.
from partnerkit.simulator.journal_verdicts import CONTRACTS as GENERIC_CONTRACTS  # noqa: F401, RUF100
from partnerkit.simulator.journal_verdicts import (
    TOKEN_PATH,
    TRANSIENT_STATUSES,
    breaking_drift,
    is_invalid_body,
)
from partnerkit.simulator.journal_verdicts import Finding as Finding
from partnerkit.simulator.journal_verdicts import JournalVerdict as JournalVerdict
from partnerkit.simulator.journal_verdicts import fault_of as _fault
from partnerkit.simulator.journal_verdicts import judge_journal as judge_journal

Entry = JournalEntryJSON
DEADLINE_SLACK = 0.25  # T1
SCHEDULING_SLACK = 0.15  # a sleep ends a little late on a loaded machine
AMBIGUITY_S = 0.1  # an answer this close to the timeout may or may not have been read


@dataclass(frozen=True)
class ClientSettings:
    """What the client under judgement was configured with."""

    timeout: float
    deadline: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    retry_after_max: float = 60.0
    max_pages: int = 10_000


@dataclass(frozen=True)
class Observation:
    """One operation as it happened."""

    operation: str  # "get_order" | "acknowledge" | "iter_orders"
    outcome: Any  # the value returned, or the exception raised
    elapsed: float
    journal: Sequence[Entry]  # the fake partner's entries during the operation
    settings: ClientSettings
    idempotency_key: str | None = None
    initial_order_ids: frozenset[str] | None = None  # P3: the data set before a sync
    partner_orders: Mapping[str, Any] | None = None  # M1: the partner's payloads by order id
    secrets: tuple[str, ...] = ()

    @property
    def raised(self) -> BaseException | None:
        return self.outcome if isinstance(self.outcome, BaseException) else None


@dataclass(frozen=True)
class Violation:
    contract: str
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        where = f" [journal seq {self.seq}]" if self.seq is not None else ""
        return f"{self.contract}: {self.message}{where}"


# --- reading the journal ------------------------------------------------------------------


def api_entries(observation: Observation) -> list[Entry]:
    return [e for e in observation.journal if e["path"] != TOKEN_PATH]


def token_entries(observation: Observation) -> list[Entry]:
    return [e for e in observation.journal if e["path"] == TOKEN_PATH]


def operations(observation: Observation) -> list[list[Entry]]:
    """API entries grouped into operations, each a list of attempts.

    An observation of get_order or acknowledge is one operation. A sync is
    one operation per page: grouped by X-Request-Id (the same on every
    attempt of an operation) or, for a client that sends none, by query."""
    entries = api_entries(observation)
    if observation.operation != "iter_orders":
        return [entries] if entries else []
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        request_id = entry["headers"].get("x-request-id")
        key = request_id if request_id is not None else str(sorted(entry["query"].items()))
        groups.setdefault(key, []).append(entry)
    return list(groups.values())


def is_transient_answer(entry: Entry) -> bool:
    """A cut connection or a status worth retrying (client.retry judges failures)."""
    return entry["status"] is None or entry["status"] in TRANSIENT_STATUSES


def is_permanent(entry: Entry) -> bool:
    status = entry["status"]
    if status is not None and 400 <= status < 500 and status not in (401, 429):
        return True
    return is_invalid_body(entry)


def seen_by_client(entry: Entry, timeout: float) -> bool:
    """Whether the client surely got this answer before its attempt timed out.
    An answer that took about as long as the timeout may have come too late:
    the verdicts do not hold the client to what it may never have seen."""
    duration = entry.get("duration_ms")
    return entry["status"] is not None and duration is not None and \
        duration / 1000 < timeout - AMBIGUITY_S


def retry_after_bounds(entry: Entry) -> tuple[float, float] | None:
    """The Retry-After the entry's answer carried, as (at least, at most) seconds.
    An HTTP-date has whole-second resolution: "N s from now" may mean N-1 s."""
    if entry["status"] not in TRANSIENT_STATUSES:
        return None
    value = _fault(entry).get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), float(value)
    if isinstance(value, str) and value.startswith("http-date:"):
        seconds = float(value.split(":", 1)[1])
        return max(0.0, seconds - 1.0), seconds
    return None


def retry_after(entry: Entry) -> float | None:
    """The least the client was asked to wait after this answer, if anything."""
    bounds = retry_after_bounds(entry)
    return bounds[0] if bounds is not None else None


def token_failures_before(observation: Observation, moment: float) -> int:
    """Failed token requests up to `moment`: each used up an attempt of its operation."""
    return sum(1 for e in token_entries(observation) if e["at"] <= moment and e["status"] != 200)


def _token_failures_between(observation: Observation, start: float, end: float) -> int:
    return sum(1 for e in token_entries(observation)
               if start <= e["at"] <= end and e["status"] != 200)


def answered_after(entry: Entry, timeout: float) -> float:
    """When the client was done with this attempt, relative to its arrival."""
    duration = entry.get("duration_ms")
    seconds = float(duration) / 1000 if duration is not None else timeout
    return min(timeout, seconds)


def _describe(entry: Entry) -> str:
    if entry["status"] is None:
        kind = next(iter(_fault(entry).values()), "cut")
        return f"a cut connection ({kind})"
    if is_invalid_body(entry):
        return f"an invalid body ({next(iter(_fault(entry)), 'fault')})"
    return f"a {entry['status']}"


def _start(observation: Observation) -> float | None:
    return observation.journal[0]["at"] if observation.journal else None


def _is(outcome: Any, *types: type[BaseException]) -> bool:
    return isinstance(outcome, types)


# --- the verdicts ---------------------------------------------------------------------------


def check_t1(observation: Observation) -> list[Violation]:
    """Every operation returns or raises within its deadline (+0.25 s)."""
    count = max(1, len(operations(observation))) if observation.operation == "iter_orders" \
        else 1
    bound = observation.settings.deadline * count + DEADLINE_SLACK
    if observation.elapsed > bound:
        what = f"{count} page fetches" if count > 1 else observation.operation
        return [Violation("T1", f"{what} took {observation.elapsed:.2f} s; the deadline allows "
                                f"{bound - DEADLINE_SLACK:.2f} s (+{DEADLINE_SLACK} s)")]
    return []


def check_t2(observation: Observation) -> list[Violation]:
    """An attempt is abandoned after `timeout` and counts as a transient failure."""
    settings = observation.settings
    violations = []
    for group in operations(observation):
        for number, (attempt, following) in enumerate(itertools.pairwise(group), 1):
            slow = attempt["status"] is None or (attempt.get("duration_ms") or 0) / 1000 \
                > settings.timeout + SCHEDULING_SLACK
            if not slow:
                continue
            gap = following["at"] - attempt["at"]
            allowed = settings.timeout + settings.backoff_max + SCHEDULING_SLACK + 0.1
            if gap > allowed and retry_after(attempt) is None:
                violations.append(Violation(
                    "T2", f"attempt {number + 1} came {gap:.2f} s after attempt {number}, which "
                          f"should have been abandoned after the {settings.timeout} s timeout",
                    following["seq"]))
    start = _start(observation)
    groups = operations(observation)
    if observation.operation != "iter_orders" and groups and start is not None:
        last = groups[-1][-1]
        waited = start + observation.elapsed - last["at"]
        slow = (last.get("duration_ms") or 0) / 1000 > settings.timeout + SCHEDULING_SLACK
        if slow and waited > settings.timeout + 2 * SCHEDULING_SLACK + 0.1:
            violations.append(Violation(
                "T2", f"waited {waited:.2f} s for the last attempt; the timeout is "
                      f"{settings.timeout} s", last["seq"]))
    return violations


def check_r1(observation: Observation) -> list[Violation]:
    """Transient failures are retried; other 4xx and complete invalid bodies never."""
    violations = []
    groups = operations(observation)
    for group in groups:
        for number, (attempt, _) in enumerate(itertools.pairwise(group), 1):
            if is_permanent(attempt) and seen_by_client(attempt, observation.settings.timeout):
                violations.append(Violation(
                    "R1", f"attempt {number} got {_describe(attempt)}, which is never retried, "
                          f"and was retried", attempt["seq"]))
    start = _start(observation)
    if groups and start is not None and observation.raised is not None and \
            _may_retry(observation):
        last_group = groups[-1]
        last = last_group[-1]
        # Time the operation used, token fetches included: the whole observation
        # for one operation; for a sync, from its last page's first attempt on.
        ended = start + observation.elapsed
        used = observation.elapsed if observation.operation != "iter_orders" \
            else ended - last_group[0]["at"]
        time_left = observation.settings.deadline - used
        bounds = retry_after_bounds(last)
        waits_long = bounds is not None and bounds[1] >= time_left
        # A failed token fetch is an attempt of the operation too.
        previous_end = groups[-2][-1]["at"] if len(groups) > 1 else float("-inf")
        attempts = len(last_group) + token_failures_before(observation, last["at"]) \
            - token_failures_before(observation, previous_end)
        if (is_transient_answer(last) and attempts < observation.settings.max_attempts
                and not waits_long
                and time_left > observation.settings.backoff_max + observation.settings.timeout):
            violations.append(Violation(
                "R1", f"gave up after attempt {attempts} got {_describe(last)}, with "
                      f"attempts and {time_left:.2f} s left", last["seq"]))
    return violations


def _may_retry(observation: Observation) -> bool:
    return not (observation.operation == "acknowledge" and observation.idempotency_key is None)


def check_r2(observation: Observation) -> list[Violation]:
    """At most max_attempts attempts; no sleep runs past the deadline."""
    settings = observation.settings
    violations = []
    for group in operations(observation):
        if len(group) > settings.max_attempts:
            violations.append(Violation(
                "R2", f"{len(group)} attempts; max_attempts is {settings.max_attempts}",
                group[settings.max_attempts]["seq"]))
        late = group[-1]["at"] - group[0]["at"]
        if late > settings.deadline + SCHEDULING_SLACK:
            violations.append(Violation(
                "R2", f"attempt {len(group)} started {late:.2f} s into an operation with a "
                      f"{settings.deadline} s deadline", group[-1]["seq"]))
    return violations


def check_r3(observation: Observation) -> list[Violation]:
    """Retry-After is honoured; one longer than the time left fails at once."""
    violations = []
    settings = observation.settings
    groups = operations(observation)
    for group in groups:
        for number, (attempt, following) in enumerate(itertools.pairwise(group), 1):
            asked = retry_after(attempt)
            if not seen_by_client(attempt, settings.timeout):
                continue
            gap = following["at"] - attempt["at"]
            if asked is not None and gap + 0.05 < asked:
                shown = _fault(attempt).get("retry_after")
                violations.append(Violation(
                    "R3", f"attempt {number + 1} came {gap:.2f} s after a {attempt['status']} "
                          f"with Retry-After: {shown}", following["seq"]))
    if groups:
        last = groups[-1][-1]
        asked = retry_after(last)
        used = last["at"] - groups[-1][0]["at"]
        if asked is not None and seen_by_client(last, settings.timeout) and \
                asked > min(settings.deadline - used, settings.retry_after_max):
            expected: type[PartnerError] = RateLimited if last["status"] == 429 \
                else PartnerUnavailable
            if not _is(observation.outcome, expected):
                violations.append(Violation(
                    "R3", f"a {last['status']} with Retry-After longer than the time left should "
                          f"fail at once with {expected.__name__}, not "
                          f"{type(observation.outcome).__name__}", last["seq"]))
            start = _start(observation)
            if start is not None:
                ended = start + observation.elapsed
                lingered = ended - (last["at"] + (last.get("duration_ms") or 0) / 1000)
                if lingered > 0.5:
                    violations.append(Violation(
                        "R3", f"waited {lingered:.2f} s after a Retry-After longer than the time "
                              f"left instead of failing at once", last["seq"]))
    return violations


def check_r4(observation: Observation) -> list[Violation]:
    """Other transient failures back off exponentially with full jitter: attempt n
    waits at most min(backoff_max, backoff_base * 2**(n-1))."""
    settings = observation.settings
    violations = []
    for group in operations(observation):
        for number, (attempt, following) in enumerate(itertools.pairwise(group), 1):
            if not is_transient_answer(attempt) or retry_after(attempt) is not None:
                continue
            if attempt["status"] is None and attempt.get("duration_ms") is None:
                continue  # a hang: when the client let go is unknown to the partner
            wait = following["at"] - attempt["at"] - answered_after(attempt, settings.timeout)
            # A failed token fetch of this operation used up an attempt before this one
            # (found on virtual time at production settings: a reset token fetch, then a
            # 429, then a backoff for attempt 3 judged as if for attempt 2).
            fetches = _token_failures_between(observation, group[0]["at"] - settings.deadline,
                                              attempt["at"])
            position = number + fetches
            ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** (position - 1))
            if wait > ceiling + SCHEDULING_SLACK:
                violations.append(Violation(
                    "R4", f"attempt {number + 1} came {wait:.2f} s after attempt {number} "
                          f"failed; full jitter allows at most {ceiling:.2f} s",
                    following["seq"]))
    return violations


def check_r5(observation: Observation) -> list[Violation]:
    """acknowledge is retried only with an Idempotency-Key, the same on every attempt."""
    if observation.operation != "acknowledge":
        return []
    attempts = [e for e in api_entries(observation) if e["status"] != 401]
    if observation.idempotency_key is None:
        if len(attempts) > 1:
            return [Violation("R5", f"an acknowledgement without an Idempotency-Key was sent "
                                    f"{len(attempts)} times", attempts[1]["seq"])]
        return []
    for entry in api_entries(observation):
        key = entry["headers"].get("idempotency-key")
        if key != observation.idempotency_key:
            return [Violation("R5", f"an attempt carried Idempotency-Key {key!r}, not "
                                    f"{observation.idempotency_key!r}", entry["seq"])]
    return []


def check_a1(observation: Observation) -> list[Violation]:
    """One token, reused; a 401 refreshes once; a second 401 is AuthenticationError;
    no secret in the outcome."""
    violations = []
    timeout = observation.settings.timeout
    violations += _needless_token_fetches(observation)
    groups = operations(observation)
    for group in groups:
        refused = [index for index, e in enumerate(group)
                   if e["status"] == 401 and seen_by_client(e, timeout)]
        if len(refused) >= 2:
            if len(group) > refused[1] + 1:
                violations.append(Violation("A1", "went on after a second 401",
                                            group[refused[1] + 1]["seq"]))
            if group is groups[-1] and not _is(observation.outcome, AuthenticationError):
                violations.append(Violation(
                    "A1", f"a second 401 should raise AuthenticationError, not "
                          f"{type(observation.outcome).__name__}", group[refused[1]]["seq"]))
    if groups and _is(observation.outcome, AuthenticationError):
        violations += _gave_up_without_refreshing(observation, groups)
    text = f"{observation.outcome!s} {observation.outcome!r}"
    for secret in observation.secrets:
        if secret and secret in text:
            violations.append(Violation("A1", "a secret appears in the operation's outcome"))
            break
    return violations


def _needless_token_fetches(observation: Observation) -> list[Violation]:
    """A token is fetched again only after a 401, or when the last fetch never
    gave the client a token: a token it has used (whatever the answer, short
    of 401) is a token it has, and must keep."""
    have_token_since: int | None = None  # seq of the fetch whose token the client used
    fetched_at: int | None = None
    for entry in sorted(observation.journal, key=lambda e: int(e["seq"])):
        if entry["path"] == TOKEN_PATH:
            if have_token_since is not None:
                return [Violation("A1", f"fetched a new token while the one of journal seq "
                                        f"{have_token_since} was still good (no 401 since): "
                                        f"a token must be reused until refused or expired",
                                  entry["seq"])]
            fetched_at = entry["seq"] if entry["status"] == 200 else None
        elif entry["status"] == 401:
            have_token_since = fetched_at = None
        elif fetched_at is not None:
            have_token_since = fetched_at  # the client sent an API request with it
    return []


def _gave_up_without_refreshing(observation: Observation,
                                groups: list[list[Entry]]) -> list[Violation]:
    """AuthenticationError after a single 401 is right only when no attempt was
    left: failed token fetches use up attempts of the operation too."""
    last = groups[-1]
    refusals = [e for e in last if e["status"] == 401]
    if len(refusals) != 1:
        return []
    since = groups[-2][-1]["seq"] if len(groups) > 1 else 0
    tokens = [e for e in token_entries(observation) if e["seq"] > since]
    if any(e["seq"] > refusals[0]["seq"] for e in tokens):
        return []  # it did try to refresh
    failed_fetches = [e for e in tokens if e["seq"] < refusals[0]["seq"]
                      and not (e["status"] == 200
                               and seen_by_client(e, observation.settings.timeout))]
    if len(last) + len(failed_fetches) >= observation.settings.max_attempts:
        return []
    return [Violation("A1", "raised AuthenticationError after one 401 without refreshing "
                            "the token", refusals[0]["seq"])]


def expected_order(payload: Mapping[str, Any]) -> Order | None:
    """An independent reading of a schema-valid ORDER, to check the client's mapping."""
    try:
        moment = datetime.fromisoformat(str(payload["updated_at"]).replace("Z", "+00:00"))
        return Order(
            id=payload["order_id"], status=OrderStatus(payload["state"]),
            subtotal=Decimal(payload["subtotal_cents"]) / 100, currency=payload["currency"],
            customer_email=payload["customer"]["email"],
            lines=tuple(OrderLine(line["sku"], line["qty"], Decimal(line["unit_price_cents"]) / 100)
                        for line in payload["lines"]),
            updated_at=moment)
    except (KeyError, TypeError, ValueError):
        return None


def _same_order(got: Order, want: Order) -> bool:
    return got == want and got.updated_at.utcoffset() is not None and \
        got.updated_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def check_m1(observation: Observation) -> list[Violation]:
    """Every schema-valid payload maps to an Order with exact values."""
    if observation.partner_orders is None:
        return []
    values = observation.outcome if isinstance(observation.outcome, list) else \
        [observation.outcome] if isinstance(observation.outcome, Order) else []
    for got in values:
        payload = observation.partner_orders.get(got.id)
        want = expected_order(payload) if payload is not None else None
        if want is not None and not _same_order(got, want):
            return [Violation("M1", f"order {got.id} was mapped to {got!r}, expected {want!r}")]
    return []


def _field_matches(field: str, declared: str) -> bool:
    pattern = re.escape(declared).replace(r"\[\*\]", r"\[\d+\]")
    return re.fullmatch(pattern, field) is not None or field.startswith(
        tuple(f"{declared}{sep}" for sep in (".", "[")))


def check_m2(observation: Observation) -> list[Violation]:
    """A schema-invalid payload raises PartnerContractError naming the field path."""
    groups = operations(observation)
    if not groups:
        return []
    last = groups[-1][-1]
    drift = breaking_drift(last)
    if drift is None and not is_invalid_body(last):
        return []
    if not seen_by_client(last, observation.settings.timeout):
        return []
    outcome = observation.outcome
    if not isinstance(outcome, BaseException):
        if drift is None:
            return [Violation("M2", f"a complete but invalid body ({_fault(last)}) was accepted",
                              last["seq"])]
        return []  # a drift path may not exist in every payload: nothing was broken
    if not isinstance(outcome, PartnerContractError):
        return [Violation("M2", f"an invalid payload raised {type(outcome).__name__}, not "
                                f"PartnerContractError", last["seq"])]
    if drift is not None:
        declared = [path for key in ("missing", "wrong_type", "null")
                    for path in drift.get(key, ())]
        if drift.get("unknown_enum"):
            declared.append(drift["unknown_enum"])
        field_path = outcome.field or ""
        if not any(_field_matches(field_path, path) for path in declared):
            return [Violation("M2", f"PartnerContractError names field {field_path!r}; the "
                                    f"partner broke {declared}", last["seq"])]
    return []


def check_p1(observation: Observation) -> list[Violation]:
    """Pagination terminates: a repeated cursor or the page cap raises CursorDriftError."""
    if observation.operation != "iter_orders":
        return []
    pages = operations(observation)
    if len(pages) > observation.settings.max_pages + 1:
        return [Violation("P1", f"{len(pages)} page fetches; the page cap is "
                                f"{observation.settings.max_pages}")]
    repeated = [g[-1] for g in pages
                if g[-1]["status"] == 200 and "cursor" in g[-1]["query"]
                and seen_by_client(g[-1], observation.settings.timeout)
                and _fault(g[-1]).get("cursor_drift", {}).get("repeat")]
    if repeated and not _is(observation.outcome, PartnerError):
        return [Violation("P1", "the partner repeated a cursor and the sync did not end in "
                                "CursorDriftError", repeated[0]["seq"])]
    if repeated and not _is(observation.outcome, CursorDriftError) \
            and repeated[0] is pages[-1][-1]:
        return [Violation("P1", f"a repeated cursor should raise CursorDriftError, not "
                                f"{type(observation.outcome).__name__}", repeated[0]["seq"])]
    return []


def check_p2(observation: Observation) -> list[Violation]:
    """A sync never yields the same order twice."""
    if observation.operation != "iter_orders" or not isinstance(observation.outcome, list):
        return []
    seen: set[str] = set()
    for order in observation.outcome:
        if order.id in seen:
            return [Violation("P2", f"order {order.id} was yielded twice")]
        seen.add(order.id)
    return []


def drifted_ids(observation: Observation, kind: str) -> set[str]:
    found: set[str] = set()
    for entry in observation.journal:
        drifted = _fault(entry).get("drifted", {})
        found.update(drifted.get(kind, ()))
    return found


def check_p3(observation: Observation) -> list[Violation]:
    """Every order that exists unchanged through a sync is yielded."""
    if observation.operation != "iter_orders" or observation.initial_order_ids is None \
            or not isinstance(observation.outcome, list):
        return []
    unchanged = observation.initial_order_ids - drifted_ids(observation, "deleted") \
        - drifted_ids(observation, "updated")
    missing = unchanged - {order.id for order in observation.outcome}
    if missing:
        return [Violation("P3", f"{len(missing)} order(s) that never changed were not yielded, "
                                f"e.g. {sorted(missing)[:3]}")]
    return []


def check_e1(observation: Observation) -> list[Violation]:
    """Nothing but PartnerError subclasses escapes the client."""
    raised = observation.raised
    if raised is not None and not isinstance(raised, PartnerError):
        return [Violation("E1", f"{type(raised).__name__} escaped the client: {raised!s:.120}")]
    return []


VERDICTS: dict[str, Callable[[Observation], list[Violation]]] = {
    "T1": check_t1, "T2": check_t2, "R1": check_r1, "R2": check_r2, "R3": check_r3,
    "R4": check_r4, "R5": check_r5, "A1": check_a1, "M1": check_m1, "M2": check_m2,
    "P1": check_p1, "P2": check_p2, "P3": check_p3, "E1": check_e1,
}


class ContractViolation(AssertionError):
    """A client broke a behaviour contract; the message lists every violation."""

    def __init__(self, report: Report, hint: str = "") -> None:
        super().__init__(str(report) + (f"\n{hint}" if hint else ""))
        self.report = report


@dataclass(frozen=True)
class Report:
    """The verdicts over one observation: `passed`, or the violations first."""

    observation: Observation
    violations: tuple[Violation, ...] = field(default_factory=tuple)
    judged: tuple[str, ...] = ()  # the contract IDs that were judged

    @property
    def passed(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        if self.passed:
            return f"{self.observation.operation}: every contract holds"
        lines = [f"{self.observation.operation}: {len(self.violations)} contract "
                 f"violation(s)"]
        return "\n".join([*lines, *(f"  {violation}" for violation in self.violations)])

    def __repr__(self) -> str:
        # Violations first: this is what `assert report.passed, report` shows.
        if self.passed:
            return f"<Report {self.observation.operation}: every contract holds>"
        found = "; ".join(str(violation) for violation in self.violations)
        return f"<Report {self.observation.operation}: {found}>"

    def raise_for_violations(self, hint: str = "") -> None:
        """Raise `ContractViolation` (an AssertionError) listing every violation."""
        if not self.passed:
            raise ContractViolation(self, hint)


def assert_contracts_hold(observation: Observation,
                          contracts: Sequence[str] = tuple(VERDICTS)) -> Report:
    """Judge `observation` and raise `ContractViolation` naming every violation."""
    report = judge(observation, contracts)
    report.raise_for_violations()
    return report


def judge(observation: Observation, contracts: Sequence[str] = tuple(VERDICTS)) -> Report:
    """Run the named verdicts (all by default) over one observation."""
    found: list[Violation] = []
    for contract in contracts:
        found += VERDICTS[contract](observation)
    report = Report(observation, tuple(found), tuple(contracts))
    evidence.note(report)  # for the contract report of a pytest run; a no-op elsewhere
    return report
