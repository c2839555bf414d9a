"""Client-credentials tokens of the fake partner: issued, expiring, revocable."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Live tokens kept at most; past it the oldest are forgotten (counted in `forgotten`).
MAX_LIVE_TOKENS = 100_000


class TokenStore:
    """Bearer tokens and their expiry.

    Token values are keyed with a random secret of this store: derived from
    public values only (the seed and a counter), anyone who read the seed in
    `/__sim/health` could compute a valid token. Expired tokens leave from the
    front of an insertion-ordered map, so issuing stays O(1) however many are
    live (a full scan per issue had made the token endpoint 9x slower at 60,000)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 key: bytes | None = None) -> None:
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._revoked: set[str] = set()  # kept so tests can list every token handed out
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.forgotten = 0

    def issue(self, seed: int, ttl_s: int) -> str:
        with self._lock:
            number = next(self._counter)
            token = "sim-" + hashlib.blake2b(
                f"partnersim-token|{seed}|{number}".encode(), digest_size=18, key=self._key
            ).hexdigest()
            self._forget_expired()
            self._expiry[token] = self._clock() + ttl_s
            return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry

    def is_revoked(self, token: str) -> bool:
        return token in self._revoked

    def revoke(self, token: str) -> None:
        with self._lock:
            self._expiry.pop(token, None)
            if len(self._revoked) >= MAX_LIVE_TOKENS:
                self._revoked.clear()
            self._revoked.add(token)

    def issued(self) -> set[str]:
        """The tokens handed out and remembered: live, expired not yet forgotten, revoked."""
        with self._lock:
            return set(self._expiry) | self._revoked

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget_expired(self) -> None:
        """Drop expired tokens from the front (oldest first), and the oldest live ones
        past MAX_LIVE_TOKENS. A token issued with a shorter TTL behind a longer one
        waits for it; `is_valid` checks the expiry itself, so it is never honoured late."""
        now = self._clock()
        while self._expiry:
            token, expiry = next(iter(self._expiry.items()))
            if expiry > now and len(self._expiry) < MAX_LIVE_TOKENS:
                break
            if expiry > now:
                self.forgotten += 1
            del self._expiry[token]
