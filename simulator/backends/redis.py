"""The redis backend: the state N worker processes share, exact as one process.

Every key lives under one prefix per fake partner (`--state-prefix`), so two
fake partners can share one Redis. Each change is one Lua script, so it is
atomic however many workers race:

- `admit` (once per partner request): the scenario's version, the bearer
  token, then the budgets (`after`, `every`, `times`) of the rules that
  matched here, the request's occurrence count for seeded decisions, and the
  rate-limit bucket of the rule that acts, clocked by Redis's `TIME`. Matching
  stays here (compiled rules are per process); a rule with a `probability`
  hands its draw back to Python (the seeded formula of DESIGN.md, which Lua
  cannot run) and the script is called once more with the verdict.
- `publish`: a new scenario (or a reset) for every worker, with budgets,
  buckets and acknowledgements afresh, before the admin call returns.
- the data set's changes (cursor drift): a log of changes, each with the seeded
  generator state it was drawn with, that every worker applies in log order
  before its next answer (the admit script returns the log's length);
- tokens (issued, expiring, revoked), acknowledgements, and the journal: a
  list of completed entries under one global `seq`, bounded in entries and
  bytes, appended in batches (one script call per event-loop tick).

Redis not answering raises StateUnavailable: the fake partner then answers
503 `state_backend_unavailable`, never a fault-free pass. redis-py reconnects
by itself on the next call, so the workers recover when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from partnerkit.simulator.backends import (
    ScenarioChanged,
    StateUnavailable,
    TokenCheck,
    TokenRefused,
    apply_drift,
)
from partnerkit.simulator.cursor import decode_cursor
from partnerkit.simulator.dataset import OrderStore
from partnerkit.simulator.engine import (
    MAX_REMEMBERED_REQUESTS,
    BucketOutcome,
    Decision,
    FaultEngine,
    RequestInfo,
    is_idle_cursor_drift,
    pick_fault,
    request_digest,
    seeded_rng,
)
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES, build_entry
from partnerkit.simulator.journal_entry import JournalEntry, JournalEntryJSON
from partnerkit.simulator.scenario import CursorDrift, RateLimit, Scenario
from partnerkit.simulator.tokens import MAX_LIVE_TOKENS

T = TypeVar("T")

#: How long a completed journal entry may wait to be sent with others.
FLUSH_EVERY_S = 0.001
#: Entries sent at once at most (then at once, without waiting).
MAX_BATCH = 256
#: Seconds a Redis call may take before the request is answered 503.
SOCKET_TIMEOUT_S = 2.0

# The token bucket of simulator.engine.TokenBucket, on Redis's clock: capacity
# `limit`, starting full, refilling limit/per_s tokens a second.
_BUCKET = """
local function take(p, index, limit, per_s, now)
  local bk = p .. 'bucket'
  local tokens = tonumber(redis.call('HGET', bk, index .. ':t') or limit)
  local updated = tonumber(redis.call('HGET', bk, index .. ':u') or now)
  local rate = limit / per_s
  tokens = math.min(limit, tokens + (now - updated) * rate)
  local allowed, remaining, retry = 1, 0, 0
  if tokens >= 1 then
    tokens = tokens - 1
    remaining = math.floor(tokens)
  else
    allowed = 0
    retry = math.max(1, math.ceil((1 - tokens) / rate - 1e-9))
  end
  redis.call('HSET', bk, index .. ':t', string.format('%.17g', tokens),
             index .. ':u', string.format('%.17g', now))
  return {allowed, remaining, retry}
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
"""

# ARGV: prefix, version, check, token, digest, occurrence (-1), resume position (0),
# verdict, then 8 per candidate rule: index, after, every, times (-1: none),
# idle (1/0), probability (1/0), bucket limit (0: none), bucket per_s.
# Reply: {0, occ, drifts} no rule acts · {1, index, occ, drifts[, allowed, remaining,
# retry]} it acts (drifts: the length of the data set's change log) ·
# {2, position, occ} draw for that rule, then call again · {3, version} stale ·
# {4} token unknown or expired · {5} token revoked.
_ADMIT = _BUCKET + """
local p = ARGV[1]
local current = tonumber(redis.call('GET', p .. 'ver') or '0')
if current ~= tonumber(ARGV[2]) then return {3, current} end
local now = clock()
local check, token = ARGV[3], ARGV[4]
if check == 'valid' then
  local expiry = redis.call('ZSCORE', p .. 'tok', token)
  if not expiry or tonumber(expiry) <= now then return {4} end
elseif check == 'revoked' and redis.call('SISMEMBER', p .. 'rev', token) == 1 then
  return {5}
end
local digest, occ = ARGV[5], tonumber(ARGV[6])
local resume, verdict = tonumber(ARGV[7]), ARGV[8]
local remembered = tonumber(ARGV[9])
local n = (#ARGV - 9) / 8
for i = 1, n do
  local b = 9 + (i - 1) * 8
  local index, times = ARGV[b + 1], tonumber(ARGV[b + 4])
  local acts = false
  if i == resume then
    acts = verdict == '1' and (times < 0 or
      tonumber(redis.call('HGET', p .. 'acted', index) or '0') < times)
  elseif i > resume then
    local eligible = redis.call('HINCRBY', p .. 'matched', index, 1) - tonumber(ARGV[b + 2])
    if eligible > 0 and (eligible - 1) % tonumber(ARGV[b + 3]) == 0 and ARGV[b + 5] == '0'
        and (times < 0 or tonumber(redis.call('HGET', p .. 'acted', index) or '0') < times) then
      if occ < 0 then
        local seen = redis.call('HLEN', p .. 'occ')
        if seen >= remembered then
          redis.call('INCRBY', p .. 'forgotten', seen)
          redis.call('DEL', p .. 'occ')
        end
        occ = redis.call('HINCRBY', p .. 'occ', digest, 1) - 1
      end
      if ARGV[b + 6] == '1' then return {2, i, occ} end
      acts = true
    end
  end
  if acts then
    redis.call('HINCRBY', p .. 'acted', index, 1)
    local limit = tonumber(ARGV[b + 7])
    if limit > 0 then
      local got = take(p, index, limit, tonumber(ARGV[b + 8]), now)
      return {1, tonumber(index), occ, redis.call('LLEN', p .. 'drift'), got[1], got[2], got[3]}
    end
    return {1, tonumber(index), occ, redis.call('LLEN', p .. 'drift')}
  end
end
return {0, occ, redis.call('LLEN', p .. 'drift')}
"""

# ARGV: prefix, index, limit, per_s (a rate_limit picked by a one_of).
_TAKE = _BUCKET + """
return take(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), clock())
"""

# ARGV: prefix, scenario source (JSON), clear journal (1/0). Reply: {version, started}.
_PUBLISH = """
local p = ARGV[1]
redis.call('DEL', p .. 'matched', p .. 'acted', p .. 'occ', p .. 'bucket', p .. 'ack',
           p .. 'ackkey', p .. 'drift', p .. 'replay')
local t = redis.call('TIME')
if ARGV[3] == '1' then
  redis.call('DEL', p .. 'j', p .. 'js')
  redis.call('SET', p .. 'jbytes', 0)
  redis.call('SET', p .. 'jcleared', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
end
local started = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
redis.call('SET', p .. 'scenario', ARGV[2])
redis.call('SET', p .. 'started', started)
return {redis.call('INCR', p .. 'ver'), started}
"""

# ARGV: prefix, version, a change of the data set (JSON). Reply: the change log's new
# length, or 0 if the scenario changed meanwhile (the change belongs to no one).
_DRIFT = """
local p = ARGV[1]
if tonumber(redis.call('GET', p .. 'ver') or '0') ~= tonumber(ARGV[2]) then return 0 end
return redis.call('RPUSH', p .. 'drift', ARGV[3])
"""

# ARGV: prefix, token, ttl_s, most live tokens.
_ISSUE = """
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', p .. 'tok', '-inf', now)
if redis.call('ZCARD', p .. 'tok') >= tonumber(ARGV[4]) then
  redis.call('ZPOPMIN', p .. 'tok')
  redis.call('INCR', p .. 'tokforgotten')
end
redis.call('ZADD', p .. 'tok', string.format('%.17g', now + tonumber(ARGV[3])), ARGV[2])
"""

# ARGV: prefix, token, most revoked tokens kept.
_REVOKE = """
local p = ARGV[1]
redis.call('ZREM', p .. 'tok', ARGV[2])
if redis.call('SCARD', p .. 'rev') >= tonumber(ARGV[3]) then redis.call('DEL', p .. 'rev') end
redis.call('SADD', p .. 'rev', ARGV[2])
"""

# ARGV: prefix, order id, Idempotency-Key ('' none), body. The first writer wins.
_ACK = """
local p, order, key = ARGV[1], ARGV[2], ARGV[3]
local first = redis.call('HGET', p .. 'ack', order)
if first then
  if key ~= '' and redis.call('HGET', p .. 'ackkey', order) == key then return {200, first} end
  return {409, ''}
end
redis.call('HSET', p .. 'ack', order, ARGV[4])
if key ~= '' then redis.call('HSET', p .. 'ackkey', order, key) end
return {201, ARGV[4]}
"""

# ARGV: prefix, most entries, most bytes, then 4 per entry: the entry's JSON after
# its opening brace (without seq), its estimated size, cut (1/0), arrival (unix
# seconds). An entry that arrived before the journal was last cleared is left out,
# as the memory journal drops it with the clear. Reply: first seq.
_APPEND = """
local p, most, most_bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cleared = tonumber(redis.call('GET', p .. 'jcleared') or '0')
local first = nil
for i = 4, #ARGV, 4 do
  if tonumber(ARGV[i + 3]) >= cleared then
    local seq = redis.call('INCR', p .. 'jseq')
    first = first or seq
    redis.call('RPUSH', p .. 'j', '{"seq":' .. seq .. ',' .. ARGV[i])
    redis.call('RPUSH', p .. 'js', ARGV[i + 1])
    redis.call('INCRBY', p .. 'jbytes', ARGV[i + 1])
    if ARGV[i + 2] == '1' then redis.call('INCR', p .. 'jtruncated') end
  end
end
while redis.call('LLEN', p .. 'j') > most do
  redis.call('LPOP', p .. 'j')
  redis.call('DECRBY', p .. 'jbytes', redis.call('LPOP', p .. 'js'))
end
while tonumber(redis.call('GET', p .. 'jbytes')) > most_bytes
    and redis.call('LLEN', p .. 'j') > 1 do
  redis.call('LPOP', p .. 'j')
  redis.call('DECRBY', p .. 'jbytes', redis.call('LPOP', p .. 'js'))
  redis.call('INCR', p .. 'jdropped')
end
return first
"""


# ARGV: prefix. The journal empty, and entries that arrived before now left out.
_CLEAR = """
local p = ARGV[1]
local t = redis.call('TIME')
redis.call('DEL', p .. 'j', p .. 'js')
redis.call('SET', p .. 'jbytes', 0)
redis.call('SET', p .. 'jcleared', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
"""


def connect(url: str) -> redis.Redis:
    """A client for `url` (redis://HOST:PORT/DB or unix:///PATH); StateUnavailable,
    with a one-line reason, when it does not answer."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
            # One retry on a fresh connection: a pooled one is stale after Redis restarts.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError])
        client.ping()
    except (RedisConnectionError, RedisTimeoutError, ValueError) as exc:
        raise StateUnavailable(f"the state at {url} does not answer: {exc}") from exc
    return client


def run_pipeline(client: redis.Redis, prefix: str, commands: Any) -> list[Any]:
    """Commands [NAME, KEY, *ARGS] on keys under `prefix`, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for name, key, *rest in commands:
        pipe.execute_command(name, prefix + key, *rest)  # type: ignore[no-untyped-call]
    return list(pipe.execute())


class Link:
    """One connection of its own for the hot path (a script call per request): redis-py's
    pool and retry layers cost ~25 µs a call, the round trip itself ~12 µs. Shared by
    the threads of one process under a lock; reconnects on the next call after a loss."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._connection = client.connection_pool.make_connection()
        self._lock = threading.Lock()

    def run(self, script: Script, args: list[Any]) -> Any:
        """EVALSHA `script` (loading it if Redis lost it); StateUnavailable on a loss."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._evalsha(script, args)
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    self._connection.disconnect()  # type: ignore[no-untyped-call]
                    if attempt == 2:
                        raise StateUnavailable(
                            f"the shared state does not answer: {exc}") from exc
        raise AssertionError("unreachable")

    def _evalsha(self, script: Script, args: list[Any]) -> Any:
        connection = self._connection
        connection.send_command(  # type: ignore[no-untyped-call]
            "EVALSHA", script.sha, 0, *args)
        try:
            return connection.read_response()
        except NoScriptError:  # Redis restarted: load the script, then once more
            _call(lambda: self._client.script_load(script.script))
            connection.send_command(  # type: ignore[no-untyped-call]
            "EVALSHA", script.sha, 0, *args)
            return connection.read_response()


def _run(script: Script, args: list[Any]) -> Any:
    """Run a Lua script (loading it again if Redis restarted and lost it)."""
    try:
        return script(args=args)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StateUnavailable(f"the shared state does not answer: {exc}") from exc


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StateUnavailable(f"the shared state does not answer: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisJournal:
    """The journal of every worker: completed entries under one global seq, in a
    Redis list bounded in entries and in estimated bytes. An entry is held here
    while its request runs and sent when it completes, batched per loop tick."""

    def __init__(self, client: redis.Redis, prefix: str, size: int, max_bytes: int,
                 link: Link | None = None) -> None:
        if size < 1:
            raise ValueError("journal size must be at least 1")
        if max_bytes < 64 * 1024:
            raise ValueError("journal bytes must be at least 65536")
        self._client = client
        self._prefix = prefix
        self.size = size
        self.max_bytes = max_bytes
        self._append = client.register_script(_APPEND)
        self._clear = client.register_script(_CLEAR)
        self._link = link or Link(client)
        self._sizes: dict[int, tuple[int, bool]] = {}  # id(entry) -> (size, cut)
        self._batch: list[Any] = []
        self._flush_due = False
        self._batch_lock = threading.Lock()
        self.lost = 0  # completed entries Redis could not take

    def open(self, at: float, method: str, path: str, query: dict[str, str],
             headers: dict[str, str]) -> JournalEntry:
        entry, size, cut = build_entry(at, method, path, query, headers)
        self._sizes[id(entry)] = (size, cut)
        return entry

    def close(self, entry: JournalEntry) -> None:
        _, cut = self._sizes.pop(id(entry), (0, False))
        # Kept in its wire shape; the append script puts the seq (global across workers) first.
        wire: dict[str, Any] = dict(entry.to_json())
        del wire["seq"]
        text = json.dumps(wire, separators=(",", ":"))
        with self._batch_lock:
            self._batch += [text[1:], len(text) + 64, "1" if cut else "0", repr(entry.at)]
            full = len(self._batch) >= 4 * MAX_BATCH
            if self._flush_due and not full:
                return
            self._flush_due = True
        if full:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_later(FLUSH_EVERY_S, self.flush)

    def flush(self) -> None:
        """Send the completed entries held here (one script call)."""
        with self._batch_lock:
            self._flush_due = False
            batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self._link.run(self._append, [self._prefix, self.size, self.max_bytes, *batch])
        except StateUnavailable:
            self.lost += len(batch) // 4

    def _read(self, start: int, end: int) -> list[JournalEntryJSON]:
        self.flush()
        raw = _call(lambda: self._client.lrange(self._prefix + "j", start, end))
        return [json.loads(item) for item in raw]

    def entries(self) -> list[JournalEntryJSON]:
        return self._read(0, -1)

    def tail(self, after: int, limit: int) -> tuple[int, list[JournalEntryJSON]]:
        first = self._read(0, 0)
        if not first:
            return 0, []
        new = self._read(-limit, -1) if limit > 0 else []
        return first[0]["seq"], [entry for entry in new if entry["seq"] > after]

    def find(self, seqs: list[int]) -> list[JournalEntryJSON]:
        return []  # entries reach Redis complete: none is ever still in flight there

    def clear(self) -> None:
        self.flush()
        _run(self._clear, [self._prefix])

    def stats(self) -> dict[str, int]:
        length, used, dropped, cut = _call(lambda: self._pipeline(
            ["LLEN", "j"], ["GET", "jbytes"], ["GET", "jdropped"], ["GET", "jtruncated"]))
        return {"journal_entries": length, "journal_size": self.size,
                "journal_bytes": int(used or 0), "journal_max_bytes": self.max_bytes,
                "journal_dropped_for_bytes": int(dropped or 0),
                "journal_truncated_entries": int(cut or 0), "journal_lost": self.lost}

    def __len__(self) -> int:
        return int(_call(lambda: self._client.llen(self._prefix + "j")))

    def _pipeline(self, *commands: list[Any]) -> list[Any]:
        return run_pipeline(self._client, self._prefix, commands)


class RedisBackend:
    """State shared by every worker through one Redis, under `prefix`."""

    name = "redis"

    def __init__(self, client: redis.Redis, prefix: str, *, journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES) -> None:
        self.client = client
        self.prefix = prefix
        self.link = Link(client)
        self.journal = RedisJournal(client, prefix, journal_size, journal_bytes, self.link)
        self._admit = client.register_script(_ADMIT)
        self._take = client.register_script(_TAKE)
        self._publish = client.register_script(_PUBLISH)
        self._issue = client.register_script(_ISSUE)
        self._revoke = client.register_script(_REVOKE)
        self._ack = client.register_script(_ACK)
        self._drift = client.register_script(_DRIFT)
        self.engine: FaultEngine | None = None
        self.store: OrderStore | None = None
        self.drifts_applied = 0  # entries of the shared change log applied to self.store
        self.version = -1  # the shared scenario's version this process runs
        self.started = time.time()  # when it started, on Redis's clock
        self._adopting: tuple[int, float] | None = None

    def install(self, scenario: Scenario, engine: FaultEngine, store: OrderStore) -> None:
        self.engine = engine
        self.store, self.drifts_applied = store, 0
        if self._adopting is not None:
            self.version, self.started = self._adopting
            self._adopting = None
        elif self.version < 0 and not _call(lambda: self.client.exists(self.prefix + "ver")):
            self.publish(scenario, clear_journal=False)  # the first worker of a new prefix

    def publish(self, scenario: Scenario, *, clear_journal: bool) -> None:
        self.journal.flush()
        source = json.dumps(scenario.source, separators=(",", ":"))
        version, started = _run(self._publish,
                                [self.prefix, source, "1" if clear_journal else "0"])
        self.version, self.started = int(version), float(_text(started))

    def refresh(self) -> None:
        version = _call(lambda: self.client.get(self.prefix + "ver"))
        if int(version or 0) != self.version:
            self._stale()

    def _stale(self) -> None:
        """Raise ScenarioChanged with the shared scenario, or publish ours if there is none."""
        prefix = self.prefix
        version, source, started = _call(lambda: run_pipeline(
            self.client, prefix, [["GET", "ver"], ["GET", "scenario"], ["GET", "started"]]))
        if source is None:
            # Redis came back empty (it keeps nothing on disk): this worker's scenario
            # starts again for all; the others adopt it. Tokens are gone: clients refresh.
            assert self.engine is not None
            self.publish(self.engine.scenario, clear_journal=False)
            return
        self._adopting = (int(version), float(_text(started)))
        raise ScenarioChanged(json.loads(source), int(version))

    def admit(self, request: RequestInfo, token: str | None,
              check: TokenCheck) -> Decision | None:
        engine = self.engine
        assert engine is not None
        candidates = engine.candidates(request, time.time() - self.started)
        key = request.key
        args: list[Any] = [self.prefix, self.version, check, token or "",
                           request_digest(key).hex(), -1, 0, "0", MAX_REMEMBERED_REQUESTS]
        for rule, moment in candidates:
            bucket = rule.fault.action if rule.fault is not None else None
            drawn = rule.probability is not None or (moment is not None
                                                     and moment.probability is not None)
            args += [rule.index, rule.after, rule.every, -1 if rule.times is None else rule.times,
                     "1" if is_idle_cursor_drift(rule, request) else "0", "1" if drawn else "0",
                     *((bucket.limit, bucket.per_s) if isinstance(bucket, RateLimit) else (0, 1))]
        seed = engine.scenario.seed
        drawn_rng = None
        while True:
            reply = self.link.run(self._admit, args)
            code = reply[0]
            if code == 0:
                self._catch_up(int(reply[2]))
                return None
            if code == 3:
                self._stale()  # raises ScenarioChanged, or started Redis afresh: again
                args[1], args[5:8] = self.version, [-1, 0, "0"]
                drawn_rng = None
                continue
            if code == 4:
                raise TokenRefused("unknown or expired token")
            if code == 5:
                raise TokenRefused("token expired")
            if code == 2:  # the seeded draw of a probability rule, here; then carry on
                position, occurrence = int(reply[1]), int(reply[2])
                rule, moment = candidates[position - 1]
                rng = seeded_rng(seed, rule.index, key, occurrence)
                probability = rule.probability
                if moment is not None and moment.probability is not None:
                    probability = moment.probability
                assert probability is not None
                passed = rng.random() < probability
                drawn_rng = (rule.index, rng) if passed else None
                args[5:8] = [occurrence, position, "1" if passed else "0"]
                continue
            index, occurrence = int(reply[1]), int(reply[2])
            self._catch_up(int(reply[3]))
            rule, moment = next(item for item in candidates if item[0].index == index)
            if drawn_rng is not None and drawn_rng[0] == index:
                rng = drawn_rng[1]
            else:
                rng = seeded_rng(seed, index, key, occurrence)
            fault = pick_fault(rule, rng)
            outcome = None
            if len(reply) > 4:
                assert isinstance(fault.action, RateLimit)
                outcome = BucketOutcome(reply[4] == 1, fault.action.limit, int(reply[5]),
                                        int(reply[6]))
            elif isinstance(fault.action, RateLimit):  # picked by a one_of
                take = [self.prefix, index, fault.action.limit, fault.action.per_s]
                allowed, remaining, retry = _run(self._take, take)
                outcome = BucketOutcome(allowed == 1, fault.action.limit, int(remaining),
                                        int(retry))
            return Decision(rule, fault, rng, outcome, moment)

    def drift(self, action: CursorDrift, rng: random.Random,
              cursor: str) -> dict[str, list[str]]:
        """Append the change to the shared log, then apply the log in its order up to
        and including it: every worker applies the same changes in the same order."""
        version, state, gauss = rng.getstate()
        change = json.dumps({"cursor": cursor, "insert": action.insert,
                             "update": action.update, "delete": action.delete,
                             "rng": [version, list(state), gauss]}, separators=(",", ":"))
        length = int(_run(self._drift, [self.prefix, self.version, change]))
        if length == 0:
            return {}
        return self._catch_up(length)

    def _catch_up(self, length: int) -> dict[str, list[str]]:
        """Apply the shared changes this process has not (what the last one changed)."""
        if length <= self.drifts_applied:
            return {}
        start = self.drifts_applied
        changes = _call(lambda: self.client.lrange(self.prefix + "drift", start, length - 1))
        assert self.store is not None
        drifted: dict[str, list[str]] = {}
        for raw in changes:
            change = json.loads(raw)
            rng = random.Random()
            version, state, gauss = change["rng"]
            rng.setstate((version, tuple(state), gauss))
            action = CursorDrift(insert=change["insert"], update=change["update"],
                                 delete=change["delete"])
            drifted = apply_drift(self.store, action, rng, decode_cursor(change["cursor"]))
            self.drifts_applied += 1
        return drifted

    def next_use(self, key: str) -> int:
        field = request_digest(key).hex()
        return int(_call(lambda: self.client.hincrby(self.prefix + "replay", field, 1))) - 1

    def issue_token(self, seed: int, ttl_s: int) -> str:
        token = "sim-" + secrets.token_hex(18)
        _run(self._issue, [self.prefix, token, ttl_s, MAX_LIVE_TOKENS])
        return token

    def revoke_token(self, token: str) -> None:
        _run(self._revoke, [self.prefix, token, MAX_LIVE_TOKENS])

    def acknowledge(self, order_id: str, key: str | None, body: bytes) -> tuple[int, bytes]:
        status, first = _run(self._ack, [self.prefix, order_id, key or "", body])
        return int(status), first if isinstance(first, bytes) else str(first).encode()

    def spent(self) -> list[int]:
        assert self.engine is not None
        count = len(self.engine.scenario.rules)
        if not count:
            return []
        acted = _call(lambda: self.client.hmget(self.prefix + "acted", list(range(count))))
        return [int(value or 0) for value in acted]

    def stats(self) -> dict[str, Any]:
        prefix = self.prefix
        now = time.time()
        remembered, forgotten, live, tokens_forgotten = _call(lambda: run_pipeline(
            self.client, prefix, [["HLEN", "occ"], ["GET", "forgotten"],
                                  ["ZCOUNT", "tok", now, "+inf"], ["GET", "tokforgotten"]]))
        return {**self.journal.stats(), "engine_requests_remembered": remembered,
                "engine_requests_forgotten": int(forgotten or 0), "tokens_live": live,
                "tokens_forgotten": int(tokens_forgotten or 0),
                "state_prefix": prefix, "state_version": self.version}

    def healthy(self) -> bool:
        try:
            return bool(self.client.ping())
        except (RedisConnectionError, RedisTimeoutError):
            return False
