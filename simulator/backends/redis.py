"""The redis backend: the state N worker processes share, exact as one process.

Every key lives under one prefix per fake partner (`--state-prefix`), so two
fake partners can share one Redis. Each change is one Lua script, so it is
atomic however many workers race:

- `admit` (once per partner request a rule can touch): the scenario's version,
  the bearer token, then the budgets (`after`, `every`, `times`) of the rules that
  matched here, the request's occurrence count for seeded decisions, and the
  rate-limit bucket of the rule that acts, clocked by Redis's `TIME`. Matching
  stays here (compiled rules are per process); a rule with a `probability`
  hands its draw back to Python (the seeded formula of DESIGN.md, which Lua
  cannot run) and the script is called once more with the verdict. On the
  server's event loop the round trip does not block it (AsyncLink): the
  admissions of one loop tick go to Redis as one call of the script, each
  request in it as if alone, in the order asked, so exact as one at a time.
  A request no rule can touch, with a token the worker cached from an earlier
  admission, makes no call at all (backends.lease: epochs, leases and
  acknowledgements keep that exact).
- revocations, resets and scenario swaps bump the token epoch in their script
  and return only once every worker holding a live lease has dropped its cache.
- `publish`: a new scenario (or a reset) for every worker, with budgets,
  buckets and acknowledgements afresh, before the admin call returns.
- the data set's changes (cursor drift): a log of changes, each with the seeded
  generator state it was drawn with, that every worker applies in log order
  before its next answer (the admit script returns the log's length);
- tokens (issued, expiring, revoked), acknowledgements, and the journal: a
  list of completed entries under one global `seq`, bounded in entries and
  bytes, appended in batches (at most one script call a millisecond, sent
  without waiting for its reply; a read through the same connection comes
  after every batch sent before it).

Redis not answering raises StateUnavailable: the fake partner then answers
503 `state_backend_unavailable`, never a fault-free pass. The connections
reconnect on the next call, so the workers recover when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from partnerkit.simulator.backends import (
    ScenarioChanged,
    StateUnavailable,
    TokenCheck,
    TokenRefused,
    apply_drift,
)
from partnerkit.simulator.backends.lease import EPOCH_LUA, TokenCache
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
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES, build_entry, check_bounds
from partnerkit.simulator.journal_entry import JournalEntry, JournalEntryJSON
from partnerkit.simulator.scenario import CursorDrift, RateLimit, Scenario
from partnerkit.simulator.tokens import MAX_LIVE_TOKENS

T = TypeVar("T")

#: Entries sent at once at most (then at once, without waiting).
MAX_BATCH = 256
#: JSON without spaces; entries hold no cycles (json.dumps would build an encoder a call).
_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)
#: Encodings and request digests remembered at most (then forgotten all at once).
MAX_REMEMBERED_ENCODINGS = 4096
#: Journal batches sent at most before their replies are read.
MAX_UNREAD = 64
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

# The admit script of several requests at once (those of one event-loop tick), each
# as if alone, in order. ARGV: prefix, most remembered requests, then per request its
# count of arguments and those: version, check, token, digest, occurrence (-1), resume
# position (0), verdict, then 8 per candidate rule: index, after, every, times (-1:
# none), idle (1/0), probability (1/0), bucket limit (0: none), bucket per_s.
# Reply: {epoch, Redis's clock, replies, token expiries ('' unchecked)}, one reply per
# request: {0, occ, drifts} no rule acts · {1, index, occ, drifts[,
# allowed, remaining, retry]} it acts (drifts: the length of the data set's change
# log) · {2, position, occ} draw for that rule, then call again · {3, version} stale ·
# {4} token unknown or expired · {5} token revoked.
_ADMIT = _BUCKET + """
local p, remembered = ARGV[1], tonumber(ARGV[2])
local current = tonumber(redis.call('GET', p .. 'ver') or '0')
local epoch = tonumber(redis.call('GET', p .. 'epoch') or '0')
local now = clock()
local valid_until = ''  -- the expiry of the request's token, once checked
local drifts = nil  -- the change log's length: no request here changes it
local function drift_length()
  drifts = drifts or redis.call('LLEN', p .. 'drift')
  return drifts
end
local function admit(o, count)
  if current ~= tonumber(ARGV[o + 1]) then return {3, current} end
  local check, token = ARGV[o + 2], ARGV[o + 3]
  if check == 'valid' then
    local expiry = redis.call('ZSCORE', p .. 'tok', token)
    if not expiry or tonumber(expiry) <= now then return {4} end
    valid_until = expiry
  elseif check == 'revoked' and redis.call('SISMEMBER', p .. 'rev', token) == 1 then
    return {5}
  end
  local digest, occ = ARGV[o + 4], tonumber(ARGV[o + 5])
  local resume, verdict = tonumber(ARGV[o + 6]), ARGV[o + 7]
  for i = 1, (count - 7) / 8 do
    local b = o + 7 + (i - 1) * 8
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
        return {1, tonumber(index), occ, drift_length(), got[1], got[2], got[3]}
      end
      return {1, tonumber(index), occ, drift_length()}
    end
  end
  return {0, occ, drift_length()}
end
local replies, expiries, o = {}, {}, 3
while o <= #ARGV do
  local count = tonumber(ARGV[o])
  valid_until = ''
  replies[#replies + 1] = admit(o, count)
  expiries[#expiries + 1] = valid_until
  o = o + count + 1
end
return {epoch, string.format('%.17g', now), replies, expiries}
"""

# ARGV: prefix, index, limit, per_s (a rate_limit picked by a one_of).
_TAKE = _BUCKET + """
return take(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), clock())
"""

# ARGV: prefix, scenario source (JSON), clear journal (1/0). Reply: {version, started,
# epoch}.
_PUBLISH = EPOCH_LUA + """
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
return {redis.call('INCR', p .. 'ver'), started, bump(p)}
"""

# ARGV: prefix, version, a change of the data set (JSON). Reply: the change log's new
# length, or 0 if the scenario changed meanwhile (the change belongs to no one).
_DRIFT = """
local p = ARGV[1]
if tonumber(redis.call('GET', p .. 'ver') or '0') ~= tonumber(ARGV[2]) then return 0 end
return redis.call('RPUSH', p .. 'drift', ARGV[3])
"""

# ARGV: prefix, token, ttl_s, most live tokens. Reply: a new epoch if a live token was
# forgotten (workers may have cached it), else 0.
_ISSUE = EPOCH_LUA + """
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local epoch = 0
redis.call('ZREMRANGEBYSCORE', p .. 'tok', '-inf', now)
if redis.call('ZCARD', p .. 'tok') >= tonumber(ARGV[4]) then
  redis.call('ZPOPMIN', p .. 'tok')
  redis.call('INCR', p .. 'tokforgotten')
  epoch = bump(p)
end
redis.call('ZADD', p .. 'tok', string.format('%.17g', now + tonumber(ARGV[3])), ARGV[2])
return epoch
"""

# ARGV: prefix, token, most revoked tokens kept. Reply: the new epoch.
_REVOKE = EPOCH_LUA + """
local p = ARGV[1]
redis.call('ZREM', p .. 'tok', ARGV[2])
if redis.call('SCARD', p .. 'rev') >= tonumber(ARGV[3]) then redis.call('DEL', p .. 'rev') end
redis.call('SADD', p .. 'rev', ARGV[2])
return bump(p)
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
    except RedisError as exc:  # a DB it does not have, a server that is not Redis
        raise StateUnavailable(f"the state at {url} refused it: {exc}") from exc
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
    the threads of one process under a lock; reconnects on the next call after a loss.

    `send` writes a journal batch without waiting for its reply: the loop goes on at
    once, and the replies are read before the next call on this connection, so a read
    made through it (`execute`) sees every batch sent before it."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._connection = client.connection_pool.make_connection()
        self._lock = threading.Lock()
        # The batches sent whose replies are not read yet: (entries, script, command).
        self._unread: deque[tuple[int, Script, bytes]] = deque()
        self.lost = 0  # journal entries sent that Redis did not take

    def run(self, script: Script, args: list[Any]) -> Any:
        """EVALSHA `script` (loading it if Redis lost it); StateUnavailable on a loss."""
        return self._locked(lambda: self._evalsha(script, args))

    def execute(self, *command: Any) -> Any:
        """One command, after every batch sent before it; StateUnavailable on a loss."""
        def call() -> Any:
            self._connection.send_packed_command(  # type: ignore[no-untyped-call]
                [_encode(list(command))])
            return self._connection.read_response()
        return self._locked(call)

    def send(self, script: Script, parts: int, body: bytes, entries: int) -> None:
        """EVALSHA `script` with `body` (`parts` arguments in Redis's protocol) for a
        batch of `entries` journal entries, its reply unread."""
        command = b"*%d\r\n$7\r\nEVALSHA\r\n%s%s" % (parts + 2, _bulk(script.sha), body)
        with self._lock:
            self._drain(wait=len(self._unread) >= MAX_UNREAD)
            try:
                self._connection.send_packed_command(  # type: ignore[no-untyped-call]
                    [command])
            except (RedisConnectionError, RedisTimeoutError):
                self._connection.disconnect()  # type: ignore[no-untyped-call]
                self.lost += entries
                return
            self._unread.append((entries, script, command))

    def drain(self) -> None:
        """Wait for the replies of every batch sent."""
        with self._lock:
            self._drain()

    def _locked(self, action: Callable[[], T]) -> T:
        with self._lock:
            self._drain()
            for attempt in (1, 2):
                try:
                    return action()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    self._connection.disconnect()  # type: ignore[no-untyped-call]
                    if attempt == 2:
                        raise StateUnavailable(
                            f"the shared state does not answer: {exc}") from exc
        raise AssertionError("unreachable")

    def _drain(self, wait: bool = True) -> None:
        """Read the replies of the batches sent (only those already here unless `wait`);
        a batch Redis lost its script for is sent again (after the others' replies), one
        it refused or never got is lost."""
        again = []
        while self._unread:
            try:
                if not wait and not self._connection.can_read():
                    break
            except (RedisConnectionError, RedisTimeoutError):
                pass  # read_response below says what became of the connection
            entries, script, command = self._unread.popleft()
            try:
                self._connection.read_response()
            except NoScriptError:
                again.append((entries, script, command))
            except ResponseError:
                self.lost += entries
            except (RedisConnectionError, RedisTimeoutError):
                self._connection.disconnect()  # type: ignore[no-untyped-call]
                self.lost += entries + sum(item[0] for item in self._unread)
                self._unread.clear()
                return
        for entries, script, command in again:
            try:
                self._client.script_load(script.script)
                self._connection.send_packed_command(  # type: ignore[no-untyped-call]
                    [command])
                self._connection.read_response()
            except (RedisConnectionError, RedisTimeoutError, ResponseError):
                self.lost += entries

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


def _bulk(part: Any) -> bytes:
    """One argument in Redis's protocol (RESP): a bulk string."""
    data = part if isinstance(part, bytes) else str(part).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _encode(parts: list[Any]) -> bytes:
    """One command in Redis's protocol: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join([_bulk(part) for part in parts])


class AsyncLink(asyncio.Protocol):
    """One pipelined connection per event loop for the hot path, without blocking it.

    The admissions asked for during one loop tick go to Redis as one call of the admit
    script (each request in it as if alone, in the order asked), written at the end of
    the tick; each caller waits for its own reply while the loop serves others.
    hiredis parses the replies. A connection that gives no reply for SOCKET_TIMEOUT_S,
    or is lost, fails what waits with StateUnavailable; the next call connects again."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: redis.Redis,
                 admit: Script, admit_head: list[Any]) -> None:
        self.loop = loop
        kwargs = client.connection_pool.connection_kwargs
        self._path: str | None = kwargs.get("path")
        self._address = (kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)))
        self._hello: list[list[Any]] = []
        if kwargs.get("password"):
            user = [kwargs["username"]] if kwargs.get("username") else []
            self._hello.append(["AUTH", *user, kwargs["password"]])
        if kwargs.get("db"):
            self._hello.append(["SELECT", kwargs["db"]])
        self._admit = admit
        self._admit_head = _bulk(0) + b"".join(_bulk(part) for part in admit_head)
        self._admit_parts = 1 + len(admit_head)
        self._transport: asyncio.Transport | None = None
        self._open = False  # connected, and the hello commands queued first
        self._lock = asyncio.Lock()
        self._reader = hiredis.Reader()
        # What waits for a reply, in order: (future, script, its argument count, its
        # arguments in Redis's protocol); script None: a plain command.
        self._waiting: deque[tuple[asyncio.Future[Any], Script | None, int, bytes]] = deque()
        self._out: list[bytes] = []
        self._admissions: list[tuple[asyncio.Future[Any], bytes]] = []
        self._admission_parts = 0
        self._flush_due = False
        self._answered = 0
        self._watchdog: asyncio.TimerHandle | None = None
        # Called just before each write: the journal sends what it holds then, so Redis
        # wakes once for both (at a low rate, twice a request otherwise).
        self.before_write: Callable[[], None] | None = None

    async def admit(self, request: bytes, parts: int) -> Any:
        """One request's part of the admit script (`parts` arguments, encoded): its
        reply. StateUnavailable on a loss."""
        if not self._open:
            await self._connect()
        future = self.loop.create_future()
        self._admissions.append((future, request))
        self._admission_parts += parts
        self._due()
        return await future

    async def _connect(self) -> None:
        async with self._lock:
            if self._open:
                return
            hello = []
            try:
                async with asyncio.timeout(SOCKET_TIMEOUT_S):
                    if self._path is not None:
                        await self.loop.create_unix_connection(lambda: self, self._path)
                    else:
                        await self.loop.create_connection(lambda: self, *self._address)
                    for command in self._hello:
                        hello.append(self.loop.create_future())
                        self._send(hello[-1], None, len(command),
                                   b"".join(_bulk(part) for part in command))
                    self._open = True
                    for future in hello:
                        await future
            except (OSError, TimeoutError) as exc:
                if self._transport is not None:
                    self._transport.abort()
                raise StateUnavailable(f"the shared state does not answer: {exc}") from exc

    def _send(self, future: asyncio.Future[Any], script: Script | None, parts: int,
              body: bytes, source: bool = False) -> None:
        """Queue a command: `body` (`parts` arguments) after EVALSHA and the script's
        sha (EVAL and its source if `source`), or alone if `script` is None."""
        self._waiting.append((future, script, parts, body))
        if script is None:
            self._out.append(b"*%d\r\n%s" % (parts, body))
        elif source:
            self._out.append(b"*%d\r\n$4\r\nEVAL\r\n%s%s" % (
                parts + 2, _bulk(script.script), body))
        else:
            self._out.append(b"*%d\r\n$7\r\nEVALSHA\r\n%s%s" % (
                parts + 2, _bulk(script.sha), body))
        self._due()

    def _due(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._admissions:
            admissions, self._admissions = self._admissions, []
            parts, self._admission_parts = self._admission_parts, 0
            self._flush_due = True  # _send below need not ask for another flush
            batch = self.loop.create_future()
            batch.add_done_callback(lambda done: _settle(admissions, done))
            self._send(batch, self._admit, self._admit_parts + parts,
                       self._admit_head + b"".join([request for _, request in admissions]))
            self._flush_due = False
        if self._transport is None or not self._out:
            return
        if self.before_write is not None:
            self.before_write()
        data = b"".join(self._out)
        self._out.clear()
        self._transport.write(data)
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(SOCKET_TIMEOUT_S, self._watch, self._answered)

    def _watch(self, answered: int) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        if self._answered == answered and self._transport is not None:
            self._transport.abort()  # no reply for SOCKET_TIMEOUT_S: connection_lost
            return
        self._watchdog = self.loop.call_later(SOCKET_TIMEOUT_S, self._watch, self._answered)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while (reply := reader.gets()) is not False:
            self._answered += 1
            future, script, parts, body = waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                if script is not None and message.startswith("NOSCRIPT"):
                    # Redis restarted and lost its scripts: EVAL loads it again.
                    self._send(future, script, parts, body, source=True)
                elif message.startswith(("LOADING", "BUSY", "MASTERDOWN")):
                    future.set_exception(StateUnavailable(
                        f"the shared state does not answer: {message}"))
                else:
                    future.set_exception(ResponseError(message))
                continue
            future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._open = False
        self._out.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        lost = StateUnavailable(f"the shared state does not answer: {exc or 'connection closed'}")
        admissions, self._admissions = self._admissions, []
        self._admission_parts = 0
        for future, _ in admissions:
            if not future.done():
                future.set_exception(lost)
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(lost)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _settle(admissions: list[tuple[asyncio.Future[Any], bytes]],
            batch: asyncio.Future[Any]) -> None:
    """Hand each request of one admit call its own reply (or the call's failure)."""
    failure = None if batch.cancelled() else batch.exception()
    result = batch.result() if failure is None and not batch.cancelled() else None
    for position, (future, _) in enumerate(admissions):
        if future.done():
            continue
        if result is not None:
            epoch, now, replies, expiries = result
            future.set_result((epoch, now, replies[position], expiries[position]))
        else:
            future.set_exception(failure or StateUnavailable("the admit call was cancelled"))


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
    while its request runs and sent when it completes, with the others its loop tick
    completes (the append's reply is not waited for)."""

    def __init__(self, client: redis.Redis, prefix: str, size: int, max_bytes: int,
                 link: Link | None = None) -> None:
        check_bounds(size, max_bytes)
        self._client = client
        self._prefix = prefix
        self.size = size
        self.max_bytes = max_bytes
        self._append = client.register_script(_APPEND)
        self._clear = client.register_script(_CLEAR)
        # Loaded now: a batch is sent without waiting for its reply, so a NOSCRIPT would
        # be seen only later (after a restart of Redis it is, and the batch sent again).
        _call(lambda: client.script_load(_APPEND))
        self._link = link or Link(client)
        self._sizes: dict[int, tuple[int, bool]] = {}  # id(entry) -> (size, cut)
        # The append script's arguments before the entries, in Redis's protocol; then
        # each completed entry's four, held until the next flush.
        self._append_head = b"".join(_bulk(part) for part in [0, prefix, size, max_bytes])
        self._batch: list[bytes] = []
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
        text = _COMPACT.encode(wire)
        encoded = b"".join([_bulk(text[1:]), _bulk(len(text) + 64), _bulk("1" if cut else "0"),
                            _bulk(repr(entry.at))])
        with self._batch_lock:
            self._batch.append(encoded)
            full = len(self._batch) >= MAX_BATCH
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
        # At the end of this loop tick, with the entries of the requests it completes:
        # no later, so a client that reads the journal right after its answer (through
        # any worker) finds its request there — a wait of a millisecond had let a reader
        # on a busy machine come first.
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send the completed entries held here (one script call, its reply not waited
        for: reads through the same connection come after it)."""
        with self._batch_lock:
            self._flush_due = False
            batch, self._batch = self._batch, []
        if batch:
            self._link.send(self._append, 4 + 4 * len(batch),
                            b"".join([self._append_head, *batch]), len(batch))

    def settle(self) -> None:
        """Send what is held here and wait until Redis has taken every batch sent."""
        self.flush()
        self._link.drain()

    def _read(self, start: int, end: int) -> list[JournalEntryJSON]:
        self.flush()
        raw = self._link.execute("LRANGE", self._prefix + "j", start, end)
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
        self._link.run(self._clear, [self._prefix])

    def stats(self) -> dict[str, int]:
        self.settle()
        length, used, dropped, cut = _call(lambda: self._pipeline(
            ["LLEN", "j"], ["GET", "jbytes"], ["GET", "jdropped"], ["GET", "jtruncated"]))
        return {"journal_entries": length, "journal_size": self.size,
                "journal_bytes": int(used or 0), "journal_max_bytes": self.max_bytes,
                "journal_dropped_for_bytes": int(dropped or 0),
                "journal_truncated_entries": int(cut or 0),
                "journal_lost": self.lost + self._link.lost}

    def __len__(self) -> int:
        self.flush()
        return int(self._link.execute("LLEN", self._prefix + "j"))

    def _pipeline(self, *commands: list[Any]) -> list[Any]:
        return run_pipeline(self._client, self._prefix, commands)


class _Admission:
    """One request's way through the admit script: its arguments, and what each reply
    means (done with a decision, or call the script again with the new arguments)."""

    def __init__(self, backend: RedisBackend, request: RequestInfo, token: str | None,
                 check: TokenCheck) -> None:
        engine = backend.engine
        assert engine is not None
        self.backend = backend
        self.engine = engine
        self.request = request
        self.cache_key = (check, token or "")
        self.sent = time.monotonic()  # before Redis's clock is read for this request
        self.candidates = candidates = engine.candidates(request, time.time() - backend.started)
        args: list[Any] = [backend.version, check, token or "", backend.digest(request),
                           -1, 0, "0"]
        self.segments: list[bytes] = []
        for rule, moment in candidates:
            bucket = rule.fault.action if rule.fault is not None else None
            drawn = rule.probability is not None or (moment is not None
                                                     and moment.probability is not None)
            part = [rule.index, rule.after, rule.every, -1 if rule.times is None else rule.times,
                    "1" if is_idle_cursor_drift(rule, request) else "0", "1" if drawn else "0",
                    *((bucket.limit, bucket.per_s) if isinstance(bucket, RateLimit) else (0, 1))]
            args += part
            self.segments.append(backend.segment(part))
        self.args = args
        self.first = True  # the arguments are as built here (not changed by a reply)
        self.drawn_rng: tuple[int, random.Random] | None = None

    def packed(self) -> tuple[bytes, int]:
        """This request's part of the admit script's arguments in Redis's protocol, and
        how many they are: each rule's are encoded once, not per request."""
        args = self.args
        if self.first:
            head = self.backend.encoded((len(args), *args[:4]))
            return b"".join([head, b"$2\r\n-1\r\n$1\r\n0\r\n$1\r\n0\r\n",
                             *self.segments]), 1 + len(args)
        return _bulk(len(args)) + b"".join([_bulk(part) for part in args]), 1 + len(args)

    def step(self, answer: tuple[int, Any, Any, Any]) -> tuple[bool, Decision | None]:
        """(True, the decision) when `answer` (the call's epoch and clock, this request's
        reply and token expiry) settles the request; (False, None) when the script must
        run again with `self.args`."""
        backend = self.backend
        self.first = False
        epoch, now, reply, expiry = answer
        code = reply[0]
        if code == 3:
            backend._stale()  # raises ScenarioChanged: the caller adopts it, then again
        if code == 4:
            raise TokenRefused("unknown or expired token")
        if code == 5:
            raise TokenRefused("token expired")
        backend.cache.remember(self.cache_key, self.sent, int(epoch), now, expiry)
        if code == 0:
            backend._catch_up(int(reply[2]))
            return True, None
        seed = self.engine.scenario.seed
        key = self.request.key
        if code == 2:  # the seeded draw of a probability rule, here; then carry on
            position, occurrence = int(reply[1]), int(reply[2])
            rule, moment = self.candidates[position - 1]
            rng = seeded_rng(seed, rule.index, key, occurrence)
            probability = rule.probability
            if moment is not None and moment.probability is not None:
                probability = moment.probability
            assert probability is not None
            passed = rng.random() < probability
            self.drawn_rng = (rule.index, rng) if passed else None
            self.args[4:7] = [occurrence, position, "1" if passed else "0"]
            return False, None
        index, occurrence = int(reply[1]), int(reply[2])
        backend._catch_up(int(reply[3]))
        rule, moment = next(item for item in self.candidates if item[0].index == index)
        if self.drawn_rng is not None and self.drawn_rng[0] == index:
            rng = self.drawn_rng[1]
        else:
            rng = seeded_rng(seed, index, key, occurrence)
        fault = pick_fault(rule, rng)
        outcome = None
        if len(reply) > 4:
            assert isinstance(fault.action, RateLimit)
            outcome = BucketOutcome(reply[4] == 1, fault.action.limit, int(reply[5]),
                                    int(reply[6]))
        elif isinstance(fault.action, RateLimit):  # picked by a one_of
            take = [backend.prefix, index, fault.action.limit, fault.action.per_s]
            allowed, remaining, retry = _run(backend._take, take)
            outcome = BucketOutcome(allowed == 1, fault.action.limit, int(remaining),
                                    int(retry))
        return True, Decision(rule, fault, rng, outcome, moment)


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
        # Tokens this worker saw live, its lease and epoch: a request no rule can touch
        # makes no round trip (backends.lease says why that is exact).
        self.cache = TokenCache(client, prefix)
        self.engine: FaultEngine | None = None
        self.store: OrderStore | None = None
        self.drifts_applied = 0  # entries of the shared change log applied to self.store
        self.version = -1  # the shared scenario's version this process runs
        self.started = time.time()  # when it started, on Redis's clock
        self._adopting: tuple[int, float] | None = None
        self._alink: AsyncLink | None = None
        # Each rule's arguments to the admit script in Redis's protocol, and what starts
        # a request's: encoded once, not per request (see encoded()).
        self._encoded: dict[tuple[Any, ...], bytes] = {}
        self._digests: dict[tuple[str, str, str], str] = {}

    def segment(self, part: list[Any]) -> bytes:
        """A rule's arguments to the admit script, in Redis's protocol."""
        return self.encoded(tuple(part))

    def encoded(self, parts: tuple[Any, ...]) -> bytes:
        """`parts` in Redis's protocol, remembered: a rule's arguments, or a request's
        count, version, check, token and digest (the same for many requests)."""
        packed = self._encoded.get(parts)
        if packed is None:
            if len(self._encoded) >= MAX_REMEMBERED_ENCODINGS:
                self._encoded.clear()
            packed = self._encoded[parts] = b"".join([_bulk(item) for item in parts])
        return packed

    def digest(self, request: RequestInfo) -> str:
        """The request's key digest (occurrence counts), remembered per method, path
        and query: computing it costs more than the rest of a request's arguments."""
        key = (request.method, request.path, request.query_string)
        digest = self._digests.get(key)
        if digest is None:
            if len(self._digests) >= MAX_REMEMBERED_ENCODINGS:
                self._digests.clear()
            digest = self._digests[key] = request_digest(request.key).hex()
        return digest

    def install(self, scenario: Scenario, engine: FaultEngine, store: OrderStore) -> None:
        self.engine = engine
        self.store, self.drifts_applied = store, 0
        self.cache.install(engine)
        if self._adopting is not None:
            self.version, self.started = self._adopting
            self._adopting = None
        elif self.version < 0 and not _call(lambda: self.client.exists(self.prefix + "ver")):
            self.cache.wait_out_old_leases()
            self.publish(scenario, clear_journal=False)  # the first worker of a new prefix

    def publish(self, scenario: Scenario, *, clear_journal: bool) -> None:
        self.journal.settle()
        source = json.dumps(scenario.source, separators=(",", ":"))
        version, started, epoch = _run(self._publish,
                                       [self.prefix, source, "1" if clear_journal else "0"])
        self.version, self.started = int(version), float(_text(started))
        self.cache.bumped(int(epoch))  # every worker drops its cache before this returns

    def refresh(self) -> None:
        version = _call(lambda: self.client.get(self.prefix + "ver"))
        if int(version or 0) != self.version:
            self._stale()

    def _stale(self) -> NoReturn:
        """Raise ScenarioChanged with the shared scenario (ours, published afresh, if
        Redis has none)."""
        prefix = self.prefix
        version, source, started = _call(lambda: run_pipeline(
            self.client, prefix, [["GET", "ver"], ["GET", "scenario"], ["GET", "started"]]))
        if source is None:
            # Redis came back empty (it keeps nothing on disk): this worker's scenario
            # starts again for all; the others adopt it. Tokens are gone: clients refresh.
            # This worker starts it again too, as the others do: a data set without the
            # changes of the lost log, and timed rules counted from the new start.
            assert self.engine is not None
            scenario = self.engine.scenario
            self.cache.wait_out_old_leases()  # caches from before the restart lapse
            self.publish(scenario, clear_journal=False)
            self._adopting = (self.version, self.started)
            raise ScenarioChanged(dict(scenario.source), self.version)
        self._adopting = (int(version), float(_text(started)))
        raise ScenarioChanged(json.loads(source), int(version))

    def admit(self, request: RequestInfo, token: str | None,
              check: TokenCheck) -> Decision | None:
        if self.cache.untouched(request, token, check):
            return None
        admission = _Admission(self, request, token, check)
        while True:
            args = admission.args
            epoch, now, replies, expiries = self.link.run(
                self._admit, [self.prefix, MAX_REMEMBERED_REQUESTS, len(args), *args])
            done, decision = admission.step((epoch, now, replies[0], expiries[0]))
            if done:
                return decision

    async def admit_async(self, request: RequestInfo, token: str | None,
                          check: TokenCheck) -> Decision | None:
        """admit() without blocking the event loop on the round trip: the script calls of
        the requests of one loop tick go to Redis together, pipelined on one connection,
        and the loop serves other requests while they run. Each call is still one
        atomic script, in the order the requests asked: as exact as admit()."""
        if self.cache.untouched(request, token, check):
            return None
        link = self._async_link()
        admission = _Admission(self, request, token, check)
        while True:
            done, decision = admission.step(await link.admit(*admission.packed()))
            if done:
                return decision

    def _async_link(self) -> AsyncLink:
        """This event loop's pipelined connection."""
        link = self._alink
        loop = asyncio.get_running_loop()
        if link is None or link.loop is not loop:
            link = self._alink = AsyncLink(loop, self.client, self._admit,
                                           [self.prefix, MAX_REMEMBERED_REQUESTS])
            link.before_write = self.journal.flush
        return link

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
        epoch = int(_run(self._issue, [self.prefix, token, ttl_s, MAX_LIVE_TOKENS]) or 0)
        if epoch:  # a live token was forgotten: no worker may go on accepting it
            self.cache.bumped(epoch)
        return token

    def revoke_token(self, token: str) -> None:
        """Revoke `token` for every worker before returning (their caches too)."""
        self.cache.bumped(int(_run(self._revoke, [self.prefix, token, MAX_LIVE_TOKENS])))

    def issued_tokens(self) -> set[str]:
        live, revoked = _call(lambda: run_pipeline(
            self.client, self.prefix, [["ZRANGE", "tok", 0, -1], ["SMEMBERS", "rev"]]))
        return {_text(token) for token in [*live, *revoked]}

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
                "state_prefix": prefix, "state_version": self.version,
                "tokens_cached": len(self.cache)}

    async def aclose(self) -> None:
        """Close this loop's pipelined connection (the next admission opens another)."""
        link, self._alink = self._alink, None
        if link is not None:
            link.close()
        await asyncio.to_thread(self.cache.close)

    def healthy(self) -> bool:
        try:
            return bool(self.client.ping())
        except (RedisConnectionError, RedisTimeoutError):
            return False
