"""Tokens cached by Redis workers, exact: a request no rule can touch makes no round trip.

A worker remembers a token the admit script found live, with its expiry, and
answers a request that no rule of its scenario can match without asking Redis
again (the journal's batched append aside). Exactness rests on three things:

- Epochs. Anything that ends a live token or changes which requests rules can
  touch (a revocation by `auth: expire_token`, a live token forgotten past
  MAX_LIVE_TOKENS, PUT /__sim/scenario, POST /__sim/reset) bumps a shared epoch
  in the same script, and announces it on a channel. A cached token carries
  the epoch the admit script read with it, and counts only while it equals
  the worker's own epoch: a token validated under an older epoch is never
  used after a newer one, even if its reply arrives after the notice (a fill
  and an epoch change are under one lock; the epoch is compared on fill).
- Leases. Each worker renews a lease in Redis every HEARTBEAT_S (LEASE_S
  long, on Redis's clock), and trusts its cache only until its own monotonic
  clock, read before the renewal was sent, passes LEASE_S - LEASE_MARGIN_S:
  a worker stalled, paused or cut off from Redis stops trusting its cache
  before Redis counts its lease as lapsed. A renewal also returns the epoch,
  which the worker applies (dropping its cache) before extending its lease.
- Acknowledgements. A worker applies a new epoch as soon as the notice
  reaches it (or its next renewal returns it), then acknowledges it in Redis.
  The worker that bumped applies it, acknowledges, and does not answer until
  every worker holding a live lease has acknowledged the epoch or its lease
  has lapsed (at most LEASE_S): every other worker's next request after that
  answer finds its cache dropped or its lease lapsed, and makes the round trip.

Races: a cache fill in flight during a bump carries the old epoch and is not
kept. A worker that starts mid-run trusts nothing until its first renewal,
which registers its lease (so later bumps wait for it) and returns the
current epoch. A notice lost (a dropped connection) costs a revoker at most
one heartbeat: the next renewal carries the epoch. Redis restarting empty
loses the leases that would make a revoker wait, so whoever publishes a
scenario into an empty prefix first waits until Redis has been up longer
than a lease (`wait_out_old_leases`): every lease from before the restart has
lapsed, and a cache kept from then is trusted no more; epochs keep rising
across the restart (microseconds on Redis's clock). Assumed: Redis's clock
(TIME) and the workers' monotonic clocks advance at the same rate within
LEASE_MARGIN_S a lease (no step of Redis's wall clock), and the keys under
the prefix are not deleted by hand while workers run.

What no rule can touch: no rule of the scenario matches the request by
method, path, query or headers (whatever its timing), so no budget, count,
occurrence or bucket is spent on it; and the scenario has no fault that
changes the data set (cursor_drift insert/update/delete), whose shared change
log every worker must apply before its next answer.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from partnerkit.simulator.backends import StateUnavailable, TokenCheck
from partnerkit.simulator.engine import FaultEngine, RequestInfo

#: How long a worker's lease lasts (on Redis's clock), and the longest a revocation
#: waits for a worker that does not acknowledge it.
LEASE_S = 1.0
#: How often a worker renews its lease.
HEARTBEAT_S = 0.2
#: What a worker takes off its lease, by its own clock, before it stops trusting its cache.
LEASE_MARGIN_S = 0.1
#: Cached tokens at most (then forgotten all at once).
MAX_CACHED_TOKENS = 4096
#: The longest a bump waits for acknowledgements before the answer is 503 (a lease lapses
#: within LEASE_S, so only a Redis that stops answering gets there).
MAX_ACK_WAIT_S = LEASE_S + 2.0

# A new token epoch: later than the last and than any before Redis last started empty
# (microseconds on Redis's clock), announced on the `epochs` channel.
EPOCH_LUA = """
local function bump(p)
  local t = redis.call('TIME')
  local e = math.max(tonumber(redis.call('GET', p .. 'epoch') or '0') + 1,
                     tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local text = string.format('%.0f', e)
  redis.call('SET', p .. 'epoch', text)
  redis.call('PUBLISH', p .. 'epochs', text)
  return e
end
"""

# ARGV: prefix, worker, the epoch it has applied, lease seconds. Its lease renewed on
# Redis's clock, its acknowledgement raised; reply: the epoch (a new one if Redis has none).
_RENEW = EPOCH_LUA + """
local p, worker, acked = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('HSET', p .. 'lease', worker, string.format('%.17g', now + tonumber(ARGV[4])))
if tonumber(redis.call('HGET', p .. 'ack', worker) or '0') < acked then
  redis.call('HSET', p .. 'ack', worker, ARGV[3])
end
local epoch = redis.call('GET', p .. 'epoch')
if not epoch then return bump(p) end
return tonumber(epoch)
"""

# ARGV: prefix, epoch. Reply: how many workers hold a live lease without having
# acknowledged `epoch` (leases lapsed a minute ago are forgotten).
_PENDING = """
local p, epoch = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local leases = redis.call('HGETALL', p .. 'lease')
local pending = 0
for i = 1, #leases, 2 do
  local expiry = tonumber(leases[i + 1])
  if expiry > now then
    if tonumber(redis.call('HGET', p .. 'ack', leases[i]) or '0') < epoch then
      pending = pending + 1
    end
  elseif expiry < now - 60 then
    redis.call('HDEL', p .. 'lease', leases[i])
    redis.call('HDEL', p .. 'ack', leases[i])
  end
end
return pending
"""


class TokenCache:
    """One worker's cached tokens, its lease and its epoch (see the module docstring)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self.worker = secrets.token_hex(8)
        self.epoch = 0  # the newest epoch this worker has applied (0: none yet)
        self.lease_until = 0.0  # by time.monotonic(): the cache is trusted before it
        self._entries: dict[tuple[str, str], tuple[float, int]] = {}  # -> (until, epoch)
        self._lock = threading.Lock()  # a fill against an epoch change
        self._renew_lock = threading.Lock()  # one renewal at a time
        self._renew = client.register_script(_RENEW)
        self._pending = client.register_script(_PENDING)
        self._engine: FaultEngine | None = None
        self._fast = False  # the scenario lets requests skip the round trip
        self._keeper: threading.Thread | None = None
        self._closing = threading.Event()

    def install(self, engine: FaultEngine) -> None:
        """The scenario this worker now runs (what its rules can touch)."""
        self._engine = engine
        self._fast = not any(fault.changes_dataset for rule in engine.scenario.rules
                             for fault in rule.faults)

    def untouched(self, request: RequestInfo, token: str | None, check: TokenCheck) -> bool:
        """True when `request` needs nothing from Redis: its token is cached under this
        worker's epoch and lease, and no rule can touch it."""
        if self._keeper is None:
            self._start()
            return False
        if not self._fast or not self.trusts(token, check):
            return False
        engine = self._engine
        return engine is not None and not engine.touches(request)

    def trusts(self, token: str | None, check: TokenCheck = "valid") -> bool:
        """Whether this worker takes `token` from its cache now, without asking Redis."""
        entry = self._entries.get((check, token or ""))
        if entry is None or entry[1] != self.epoch:
            return False
        now = time.monotonic()
        return now < entry[0] and now < self.lease_until

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: tuple[str, str], sent: float, epoch: int, now: Any,
                 expiry: Any) -> None:
        """The admit script found the token of `key` live at `epoch` (Redis's clock `now`,
        the token's `expiry`; the request left at `sent` by time.monotonic())."""
        if epoch != self.epoch or epoch <= 0:
            return
        if key[0] == "valid":
            if not expiry:
                return
            until = sent + float(expiry) - float(now)
        else:  # not revoked, or nothing to check: until the next epoch
            until = float("inf")
        with self._lock:
            if epoch != self.epoch:
                return
            if len(self._entries) >= MAX_CACHED_TOKENS:
                self._entries.clear()
            self._entries[key] = (until, epoch)

    def apply(self, epoch: int) -> None:
        """A newer epoch: what is cached counts no more."""
        with self._lock:
            if epoch > self.epoch:
                self.epoch = epoch
                self._entries.clear()

    def renew(self) -> None:
        """Renew the lease, apply the epoch it returns and acknowledge it, then trust the
        cache for a lease more (StateUnavailable if Redis does not answer)."""
        with self._renew_lock:
            for _ in range(4):
                sent = time.monotonic()
                acked = self.epoch
                self.apply(self._renewed(acked))
                if self.epoch == acked:  # acknowledged what this worker holds
                    self.lease_until = sent + LEASE_S - LEASE_MARGIN_S
                    return

    def _renewed(self, acked: int) -> int:
        """One renewal acknowledging `acked`: the epoch in Redis."""
        args: list[str | int | float] = [self._prefix, self.worker, acked, LEASE_S]
        return int(_call(lambda: self._renew(args=args)))

    def bumped(self, epoch: int) -> None:
        """This worker bumped the epoch to `epoch`: apply and acknowledge it, then wait
        until every worker holding a live lease has, or its lease lapsed."""
        self.apply(epoch)
        if self._keeper is not None:  # it holds a lease: acknowledge at once
            self.renew()
        deadline = time.monotonic() + MAX_ACK_WAIT_S
        pause = 0.0005
        while int(_call(lambda: self._pending(args=[self._prefix, epoch]))):
            if time.monotonic() > deadline:
                raise StateUnavailable("a worker neither acknowledged a revocation nor "
                                       "let its lease lapse")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def wait_out_old_leases(self) -> None:
        """Before the first scenario goes into an empty prefix: wait until Redis has been
        up longer than a lease, so no lease from before a restart is still trusted."""
        info = _call(lambda: self._client.info("server"))
        uptime = int(info.get("uptime_in_seconds", 0))  # whole seconds, rounded down
        if uptime < LEASE_S + LEASE_MARGIN_S:
            time.sleep(LEASE_S + LEASE_MARGIN_S - uptime)

    def _start(self) -> None:
        with self._lock:
            if self._keeper is not None:
                return
            self._closing = threading.Event()
            self._keeper = threading.Thread(target=self._keep, args=(self._closing,),
                                            name="partnersim-lease", daemon=True)
            self._keeper.start()

    def _keep(self, closing: threading.Event) -> None:
        """Renew the lease every HEARTBEAT_S, and apply and acknowledge each epoch
        announced meanwhile, until closed."""
        pubsub: Any = None
        renew_at = 0.0
        while not closing.is_set():
            try:
                if pubsub is None:
                    pubsub = self._client.pubsub(  # type: ignore[no-untyped-call]
                        ignore_subscribe_messages=True)
                    pubsub.subscribe(self._prefix + "epochs")
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + HEARTBEAT_S
                    self.renew()
                message = pubsub.get_message(timeout=max(0.0, renew_at - time.monotonic()))
                if (message is not None and message["type"] == "message"
                        and int(message["data"]) > self.epoch):
                    self.apply(int(message["data"]))
                    self.renew()
            except (StateUnavailable, RedisError, OSError, ValueError):
                # Not renewed: the lease lapses, and the cache with it, until Redis answers.
                if pubsub is not None:
                    _quietly(pubsub.close)
                    pubsub = None
                closing.wait(HEARTBEAT_S)
        if pubsub is not None:
            _quietly(pubsub.close)

    def close(self) -> None:
        """Stop renewing, and give the lease up (a revocation need not wait for it)."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        self._closing.set()
        self.lease_until = 0.0
        keeper.join(timeout=HEARTBEAT_S + 2.0)
        _quietly(lambda: self._client.hdel(self._prefix + "lease", self.worker))


def _call(action: Any) -> Any:
    try:
        return action()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StateUnavailable(f"the shared state does not answer: {exc}") from exc


def _quietly(action: Any) -> None:
    with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
        action()
