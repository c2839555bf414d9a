"""AsyncPartnerClient: the async shell, the same operations as PartnerClient."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio

from partnerkit.client._operation import (
    CursorExpired,
    ForgetToken,
    NeedToken,
    RetryEvent,
    Sleep,
    Step,
    TokenCache,
    acknowledge,
    fetch_page,
    fetch_token,
    get_order,
    make_settings,
    unexpected,
)
from partnerkit.client._pagination import Pager
from partnerkit.client._transport import AsyncHttp, AsyncTransport, HttpRequest
from partnerkit.client.errors import PartnerError
from partnerkit.client.mapping import Token
from partnerkit.client.models import Order
from partnerkit.client.retry import Failure, RetryPolicy

T = TypeVar("T")


class AsyncPartnerClient:
    """The OrderOps partner client (async): `async with`, `async for`, `await`.

    Behaves exactly as PartnerClient; attempts are bounded by cancelling them
    at their deadline.
    """

    def __init__(self, http: AsyncHttp, *, client_id: str, client_secret: str,
                 timeout: float = 5.0, deadline: float = 30.0, max_attempts: int = 4,
                 retry: RetryPolicy | None = None, page_size: int | None = None,
                 max_pages: int = 10_000, on_retry: Callable[[RetryEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
                 wall_clock: Callable[[], float] = time.time,
                 random_source: Callable[[], float] = random.random,
                 owns_http: bool = False) -> None:
        self._settings = make_settings(
            client_id=client_id, client_secret=client_secret, timeout=timeout,
            deadline=deadline, max_attempts=max_attempts, retry=retry, page_size=page_size,
            max_pages=max_pages, on_retry=on_retry, clock=clock, wall_clock=wall_clock,
            random_source=random_source)
        self._http = http
        self._owns_http = owns_http
        self._transport = AsyncTransport(http)
        self._sleep = sleep
        self._tokens = TokenCache()
        self._token_lock = anyio.Lock()

    @classmethod
    def from_url(cls, url: str, *, client_id: str, client_secret: str, timeout: float = 5.0,
                 deadline: float = 30.0, max_attempts: int = 4,
                 **options: Any) -> AsyncPartnerClient:
        """A client with its own connection pool; use it with `async with`."""
        http = AsyncHttp(base_url=url, timeout=timeout, follow_redirects=False)
        return cls(http, client_id=client_id, client_secret=client_secret, timeout=timeout,
                   deadline=deadline, max_attempts=max_attempts, owns_http=True, **options)

    def __repr__(self) -> str:
        return f"AsyncPartnerClient(base_url={str(self._http.base_url)!r}, " \
               f"client_id={self._settings.client_id!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def get_order(self, order_id: str) -> Order:
        return await self._run(get_order(self._settings, order_id), "get_order")

    async def acknowledge(self, order_id: str, idempotency_key: str | None = None) -> None:
        await self._run(acknowledge(self._settings, order_id, idempotency_key), "acknowledge")

    async def iter_orders(self, updated_since: datetime | None = None) -> AsyncIterator[Order]:
        settings = self._settings
        pager = Pager(updated_since, settings.page_size, settings.max_pages)
        while not pager.done:
            page = await self._run(fetch_page(settings, pager.params()), "iter_orders")
            if isinstance(page, CursorExpired):
                pager.cursor_expired()
                continue
            for order in pager.accept(page):
                yield order

    async def _run(self, step: Step[T], operation: str) -> T:
        try:
            return await self._drive(step)
        except PartnerError:
            raise
        except Exception as error:
            raise unexpected(error, operation) from error

    async def _drive(self, step: Step[T]) -> T:
        result: Any = None
        while True:
            try:
                command = step.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(command, HttpRequest):
                result = await self._transport.send(command)
            elif isinstance(command, Sleep):
                await self._sleep(command.seconds)
                result = None
            elif isinstance(command, NeedToken):
                result = await self._token(command.timeout)
            elif isinstance(command, ForgetToken):
                self._tokens.invalidate(command.value)
                result = None

    async def _token(self, budget: float) -> str | Failure:
        async with self._token_lock:
            token = self._tokens.current(self._settings.clock())
            if token is not None:
                return token
            fetched: Token | Failure = await self._drive(fetch_token(self._settings, budget))
            if isinstance(fetched, Failure):
                return fetched
            self._tokens.store(fetched, self._settings.clock())
            return fetched.value
