"""Client-credentials tokens of the fake partner: issued, expiring, revocable."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable


class TokenStore:
    """Bearer tokens and their expiry. Token values are derived from the seed
    and a counter, so the same traffic gets the same bytes in every run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._revoked: set[str] = set()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def issue(self, seed: int, ttl_s: int) -> str:
        with self._lock:
            number = next(self._counter)
            token = "sim-" + hashlib.blake2b(
                f"partnersim-token|{seed}|{number}".encode(), digest_size=18
            ).hexdigest()
            self._expiry[token] = self._clock() + ttl_s
            self._forget_expired()
            return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry

    def is_revoked(self, token: str) -> bool:
        return token in self._revoked

    def revoke(self, token: str) -> None:
        with self._lock:
            self._expiry.pop(token, None)
            self._revoked.add(token)

    def _forget_expired(self) -> None:
        if len(self._expiry) > 10_000:
            now = self._clock()
            for token in [t for t, expiry in self._expiry.items() if expiry <= now]:
                del self._expiry[token]
