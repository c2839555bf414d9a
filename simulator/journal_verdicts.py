"""Verdicts for any client, from the journal alone.

The contract verdicts of `contracts.verdicts` judge partnerkit's own client
from its outcome *and* the journal. These judge any client — Java, Go, a
shell script — from nothing but the journal of the fake partner, replay or
fault proxy it talked to, so they are pure functions over journal entries
and live here, where `GET /__sim/verdicts` and `partnersim verdicts` can
reach them (`contracts.verdicts.judge_journal` re-exports them).

Requests are grouped into logical operations: the same `X-Request-Id`,
else the same `Idempotency-Key`, else the same method, path and query, where
an answer that succeeded ends the operation and a pause longer than
`window_s` starts a new one. Each operation is held to the generic contracts
below, and every violation names its contract, its operation and the
journal `seq` of the evidence.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, cast

from partnerkit.simulator.journal_entry import JournalEntryJSON
from partnerkit.simulator.report import JudgedOperation, acted_faults

Entry = JournalEntryJSON

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Answers a client must never retry (a 401 is A1's: once, after a token refresh).
NON_RETRYABLE_STATUSES = frozenset({400, 403, 404, 409, 422})
#: `malformed` kinds that cut the body short: transient, unlike the other kinds.
CUT_KINDS = frozenset({"content_length_mismatch"})
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path
SCHEDULING_SLACK_S = 0.05  # a client's sleep may end this much early by its own clock

#: The generic contracts, by ID (the IDs of DESIGN.md's table where one fits).
CONTRACTS: dict[str, str] = {
    "R1": "no retry of a non-retryable answer (400, 403, 404, 409, 422, a complete but "
          "invalid body)",
    "A1": "a 401 is retried at most once, and only after a token refresh",
    "R2": "attempts per operation are bounded (--max-attempts)",
    "R3": "Retry-After is honoured",
    "R4": "a failure without Retry-After is followed by a backoff (--min-backoff-ms)",
    "R5": "every retry of a POST carries the same Idempotency-Key",
    "R6": "no request while a rate-limit bucket says wait",
}


# --- reading an entry (shared with contracts.verdicts) ----------------------------------------


def fault_of(entry: Entry) -> Mapping[str, Any]:
    fault = entry.get("fault")
    return fault if isinstance(fault, Mapping) else {}


def breaking_drift(entry: Entry) -> dict[str, Any] | None:
    drift = fault_of(entry).get("schema_drift")
    if not isinstance(drift, Mapping):
        return None
    breaking = {k: v for k, v in drift.items() if k != "extra" and v}
    return breaking or None


def is_invalid_body(entry: Entry) -> bool:
    """A complete answer whose body breaks the contract (never to be retried)."""
    if entry["status"] is None or not 200 <= entry["status"] < 300:
        return False
    malformed = fault_of(entry).get("malformed")
    return (isinstance(malformed, str) and malformed not in CUT_KINDS) or \
        breaking_drift(entry) is not None


def is_failure(entry: Entry) -> bool:
    """A transient failure: a cut connection or a status worth retrying."""
    if entry["status"] is None:
        return True
    if entry["status"] in TRANSIENT_STATUSES:
        return True
    return fault_of(entry).get("malformed") in CUT_KINDS


def succeeded(entry: Entry) -> bool:
    status = entry["status"]
    return status is not None and 200 <= status < 400 and not is_invalid_body(entry) \
        and fault_of(entry).get("malformed") not in CUT_KINDS


def ended_at(entry: Entry) -> float | None:
    """When the answer was done (arrival plus duration), if known."""
    duration = entry.get("duration_ms")
    return None if duration is None else float(entry["at"]) + float(duration) / 1000


def retry_after_s(entry: Entry) -> float | None:
    """The least wait the answer asked for, in seconds: from the Retry-After header
    the journal kept, else from the fault that made it. An HTTP-date has whole-second
    resolution, so "N s from now" may mean N-1 s."""
    if entry["status"] is None:
        return None
    value = entry.get("retry_after")
    if value is None:
        value = fault_of(entry).get("retry_after")
        if isinstance(value, str) and value.startswith("http-date:"):
            return max(0.0, float(value.split(":", 1)[1]) - 1.0)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment - float(entry["at"]) - 1.0)


def describe_answer(entry: Entry) -> str:
    if entry["status"] is None:
        return "a cut connection"
    if is_invalid_body(entry):
        return f"an invalid body ({next(iter(fault_of(entry)), 'fault')})"
    return f"a {entry['status']}"


# --- operations -------------------------------------------------------------------------------


@dataclass
class Operation:
    """The attempts of one logical operation, oldest first."""

    kind: str  # "x-request-id" | "idempotency-key" | "request"
    key: str
    attempts: list[Entry] = field(default_factory=list)

    @property
    def first(self) -> Entry:
        return self.attempts[0]

    @property
    def last(self) -> Entry:
        return self.attempts[-1]

    def describe(self) -> str:
        entry = self.first
        query = "&".join(f"{k}={v}" for k, v in sorted(entry["query"].items()))
        where = f"{entry['method']} {entry['path']}{'?' + query if query else ''}"
        if self.kind != "request":
            return f"{where} ({self.kind} {self.key})"
        return where


def group_operations(entries: Iterable[Entry], window_s: float = 30.0) -> list[Operation]:
    """API requests (token requests left out) grouped into operations."""
    operations: list[Operation] = []
    open_by_key: dict[tuple[str, str], Operation] = {}
    for entry in sorted(entries, key=lambda e: int(e["seq"])):
        if entry["path"] == TOKEN_PATH or str(entry["path"]).startswith("/__sim"):
            continue
        headers = entry.get("headers") or {}
        if headers.get("x-request-id"):
            kind, key = "x-request-id", str(headers["x-request-id"])
        elif headers.get("idempotency-key"):
            kind, key = "idempotency-key", str(headers["idempotency-key"])
        else:
            query = "&".join(f"{k}={v}" for k, v in sorted(entry["query"].items()))
            kind, key = "request", f"{entry['method']} {entry['path']}?{query}"
        operation = open_by_key.get((kind, key))
        if operation is not None and kind == "request":
            last = operation.last
            end = ended_at(last) or float(last["at"])
            if succeeded(last) or float(entry["at"]) - end > window_s:
                operation = None  # that one was over: this is a new operation
        if operation is None:
            operation = open_by_key[(kind, key)] = Operation(kind, key)
            operations.append(operation)
        operation.attempts.append(entry)
    return operations


# --- the verdicts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One violated contract: its ID, the operation, why, and the journal seq of the evidence."""

    contract: str
    operation: str
    message: str
    seq: int | None

    def __str__(self) -> str:
        where = f" [journal seq {self.seq}]" if self.seq is not None else ""
        return f"{self.contract}: {self.operation}: {self.message}{where}"


@dataclass(frozen=True)
class JudgeSettings:
    max_attempts: int = 4
    min_backoff_ms: float = 5.0
    window_s: float = 30.0


@dataclass(frozen=True)
class JournalVerdict:
    """What the journal says about the client that made it."""

    settings: JudgeSettings
    operations: int
    requests: int
    violations: tuple[Finding, ...]
    groups: tuple[Operation, ...] = ()  # the operations themselves, for the contract report

    @property
    def passed(self) -> bool:
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "operations": self.operations,
                "requests": self.requests, "settings": asdict(self.settings),
                "contracts": CONTRACTS,
                "violations": [asdict(finding) for finding in self.violations]}

    def render(self) -> str:
        summary = f"{self.requests} request(s) in {self.operations} operation(s): "
        if self.passed:
            return summary + f"every contract holds ({', '.join(CONTRACTS)})"
        lines = [str(finding) for finding in self.violations]
        broken = sorted({finding.contract for finding in self.violations})
        return "\n".join([*lines, summary + f"{len(lines)} violation(s) of "
                                             f"{', '.join(broken)}"])


def _check_retries(operation: Operation, tokens: Sequence[Entry],
                   settings: JudgeSettings) -> list[Finding]:
    """R1, A1, R3, R4 over each attempt and the one after it."""
    found: list[Finding] = []
    where = operation.describe()
    refusals = 0
    quick: list[tuple[float, Entry]] = []
    never_retried: list[tuple[Entry, Entry]] = []
    for attempt, following in itertools.pairwise(operation.attempts):
        gap = float(following["at"]) - float(attempt["at"])
        status = attempt["status"]
        if status in NON_RETRYABLE_STATUSES or is_invalid_body(attempt):
            never_retried.append((attempt, following))
        if status == 401:
            refusals += 1
            refreshed = any(attempt["seq"] < token["seq"] < following["seq"]
                            and token["status"] == 200 for token in tokens)
            if refusals > 1:
                found.append(Finding("A1", where, f"retried after a second 401 (seq "
                                                  f"{attempt['seq']})", following["seq"]))
            elif not refreshed:
                found.append(Finding("A1", where, f"retried after a 401 (seq {attempt['seq']}) "
                                                  "without refreshing the token first",
                                     following["seq"]))
        asked = retry_after_s(attempt)
        if asked is not None and gap + SCHEDULING_SLACK_S < asked:
            found.append(Finding("R3", where, f"came {gap:.3f} s after {describe_answer(attempt)}"
                                              f" (seq {attempt['seq']}) that asked to wait "
                                              f"{asked:g} s (Retry-After)", following["seq"]))
        end = ended_at(attempt)
        if asked is None and is_failure(attempt) and end is not None:
            quick.append((float(following["at"]) - end, following))
    if never_retried:  # one finding an operation: the first, and how often it happened
        attempt, following = never_retried[0]
        more = f" ({len(never_retried)} such retries)" if len(never_retried) > 1 else ""
        found.append(Finding("R1", where, f"{describe_answer(attempt)} (seq {attempt['seq']}) "
                                          f"is never retried, and was{more}", following["seq"]))
    if quick and max(wait for wait, _ in quick) * 1000 < settings.min_backoff_ms:
        wait, entry = min(quick, key=lambda item: item[0])
        found.append(Finding("R4", where, f"{len(quick)} retr{'y' if len(quick) == 1 else 'ies'} "
                                          f"after failures without Retry-After, none waiting "
                                          f"{settings.min_backoff_ms:g} ms (the shortest "
                                          f"{max(wait, 0.0) * 1000:.1f} ms): no backoff",
                             entry["seq"]))
    return found


def _check_attempts(operation: Operation, settings: JudgeSettings) -> list[Finding]:
    if len(operation.attempts) <= settings.max_attempts:
        return []
    return [Finding("R2", operation.describe(), f"{len(operation.attempts)} attempts; at most "
                                                f"{settings.max_attempts} allowed",
                    operation.attempts[settings.max_attempts]["seq"])]


def _check_idempotency(operations: Sequence[Operation], settings: JudgeSettings) -> list[Finding]:
    """R5: a POST retried without a key, or a failed POST retried with another key."""
    found: list[Finding] = []
    last_post: dict[str, Operation] = {}
    for operation in sorted(operations, key=lambda o: int(o.first["seq"])):
        first = operation.first
        if first["method"] != "POST":
            continue
        keys = [(e.get("headers") or {}).get("idempotency-key") for e in operation.attempts]
        for entry, key in zip(operation.attempts[1:], keys[1:], strict=True):
            if key is None:
                found.append(Finding("R5", operation.describe(), "a POST was retried without an "
                                                                 "Idempotency-Key", entry["seq"]))
                break
            if key != keys[0]:
                found.append(Finding("R5", operation.describe(), f"a retry carried "
                                     f"Idempotency-Key {key!r}, not {keys[0]!r}", entry["seq"]))
                break
        target = f"{first['path']}"
        before = last_post.get(target)
        if before is not None and keys[0] is not None and is_failure(before.last):
            end = ended_at(before.last) or float(before.last["at"])
            earlier_key = (before.last.get("headers") or {}).get("idempotency-key")
            if earlier_key is not None and earlier_key != keys[0] and \
                    float(first["at"]) - end <= settings.window_s:
                found.append(Finding("R5", operation.describe(), f"looks like a retry of the "
                                     f"failed POST of seq {before.last['seq']}, with another "
                                     f"Idempotency-Key ({earlier_key!r} before)", first["seq"]))
        last_post[target] = operation
    return found


def _check_buckets(entries: Sequence[Entry], operations: Sequence[Operation]) -> list[Finding]:
    """R6: after a 429 with Retry-After, no request of another operation to the same
    bucket (the same rate-limit rule, or for the upstream's own 429s the same path)
    until the wait is over."""
    found: list[Finding] = []
    operation_of = {int(e["seq"]): o for o in operations for e in o.attempts}
    api = [e for e in entries if int(e["seq"]) in operation_of]
    for limited in api:
        if limited["status"] != 429:
            continue
        asked = retry_after_s(limited)
        end = ended_at(limited)
        if asked is None or end is None:
            continue
        until = float(limited["at"]) + asked - SCHEDULING_SLACK_S
        own = operation_of[int(limited["seq"])]
        for later in api:
            if int(later["seq"]) <= int(limited["seq"]) or operation_of[int(later["seq"])] is own:
                continue
            same_bucket = later["rule"] == limited["rule"] if limited["rule"] is not None \
                else later["path"] == limited["path"]
            if same_bucket and end < float(later["at"]) < until:
                waited = float(later["at"]) - float(limited["at"])
                found.append(Finding(
                    "R6", operation_of[int(later["seq"])].describe(),
                    f"came {waited:.3f} s after the 429 of seq {limited['seq']} asked every "
                    f"request to wait {asked:g} s", later["seq"]))
                break  # one finding per 429 is evidence enough
    return found


def judge_journal(entries: Iterable[Entry], *, max_attempts: int = 4,
                  min_backoff_ms: float = 5.0, window_s: float = 30.0) -> JournalVerdict:
    """Judge the client behind a journal on the generic contracts (see CONTRACTS).

    `max_attempts`: attempts an operation may take (R2). `min_backoff_ms`: a retry
    after a failure without Retry-After counts as backing off when it waited at
    least this long; R4 holds when one retry of the operation did (full jitter may
    draw a short wait now and then, never every time). `window_s`: identical
    requests further apart than this are separate operations."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if not (0 <= min_backoff_ms < math.inf and 0 < window_s < math.inf):
        # NaN compares false with everything: it would have passed every backoff as long.
        raise ValueError("min_backoff_ms must be a finite number, not negative, and window_s "
                         "a finite number above 0")
    settings = JudgeSettings(max_attempts, min_backoff_ms, window_s)
    ordered = sorted(entries, key=lambda e: int(e["seq"]))
    tokens = [e for e in ordered if e["path"] == TOKEN_PATH]
    operations = group_operations(ordered, window_s)
    found: list[Finding] = []
    for operation in operations:
        found += _check_retries(operation, tokens, settings)
        found += _check_attempts(operation, settings)
    found += _check_idempotency(operations, settings)
    found += _check_buckets(ordered, operations)
    found.sort(key=lambda f: (f.seq if f.seq is not None else 0, f.contract))
    return JournalVerdict(settings, len(operations),
                          sum(len(o.attempts) for o in operations), tuple(found),
                          tuple(operations))


def judged_operations(verdict: JournalVerdict, source: str) -> list[JudgedOperation]:
    """The verdict as the contract report's records (simulator.report): one per
    operation, every generic contract held or violated with its evidence."""
    owner = {int(entry["seq"]): number for number, operation in enumerate(verdict.groups)
             for entry in operation.attempts}
    found: dict[int, list[Finding]] = {}
    for finding in verdict.violations:
        if finding.seq is not None and int(finding.seq) in owner:
            found.setdefault(owner[int(finding.seq)], []).append(finding)
    judged = []
    for number, operation in enumerate(verdict.groups):
        findings = found.get(number, [])
        verdicts: dict[str, dict[str, Any]] = {
            contract: {"held": True, "evidence": []} for contract in CONTRACTS}
        for finding in findings:
            evidence = verdicts[finding.contract]["evidence"]
            verdicts[finding.contract] = {
                "held": False,
                "evidence": [*evidence, *([int(finding.seq)] if finding.seq is not None else [])]}
        judged.append(JudgedOperation(
            test_id=source, operation=operation.describe(),
            settings={"max_attempts": verdict.settings.max_attempts,
                      "min_backoff_ms": verdict.settings.min_backoff_ms,
                      "window_s": verdict.settings.window_s},
            verdicts=verdicts, faults=acted_faults(operation.attempts), scenario=None,
            seed=None, violations=[str(finding) for finding in findings],
            journal_excerpt=[dict(entry) for entry in operation.attempts] if findings else []))
    return judged


REQUIRED_KEYS = ("seq", "at", "method", "path", "status")


def check_entries(document: Any, source: str) -> list[Entry]:
    """Journal entries from `{"entries": [...]}` or a bare list, or ValueError saying
    which entry is wrong and how. Another tool's journal may lack the optional keys
    (filled in here) and `at_iso` (which no verdict reads)."""
    entries = document.get("entries") if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        raise ValueError(f"{source}: expected a journal: {{\"entries\": [...]}} or a list of "
                         "entries")
    checked = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"{source}: entries[{number}]: expected an object")
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        if missing:
            raise ValueError(f"{source}: entries[{number}]: missing {', '.join(missing)}")
        if not isinstance(entry["seq"], int) or not isinstance(entry["at"], int | float):
            raise ValueError(f"{source}: entries[{number}]: seq must be an integer and at a "
                             "number")
        checked.append(cast(Entry, {"query": {}, "headers": {}, "rule": None, "fault": None,
                                    "duration_ms": None, **entry}))
    return checked
