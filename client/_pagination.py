"""Cursor pagination that survives drift: the pure state of one sync.

The pager follows the page cursors, remembers every order id it has yielded
(P2: never twice), keeps an `updated_at` watermark, and when the partner
expires a cursor (410) resumes from the watermark, inclusively, so no order
that existed throughout the sync is lost (P3). A repeated cursor, the page
cap, or cursors that expire without progress end it with CursorDriftError (P1).
"""

from __future__ import annotations

from datetime import datetime

from partnerkit.client.errors import CursorDriftError
from partnerkit.client.mapping import OrderPage, list_params
from partnerkit.client.models import Order


class Pager:
    def __init__(self, updated_since: datetime | None, page_size: int | None,
                 max_pages: int) -> None:
        self._since = updated_since
        self._page_size = page_size
        self._max_pages = max_pages
        self._cursor: str | None = None
        self._used_cursors: set[str] = set()
        self._seen: set[str] = set()
        self._watermark: datetime | None = None
        self._progress_since_resume = True
        self.pages = 0
        self.resumes = 0
        self.done = False

    def params(self) -> dict[str, str]:
        return list_params(self._page_size, self._cursor, self._since)

    def accept(self, page: OrderPage) -> list[Order]:
        """The orders of `page` not yielded before; moves the cursor on."""
        self.pages += 1
        fresh = []
        for order in page.orders:
            if self._watermark is None or order.updated_at > self._watermark:
                self._watermark = order.updated_at
            if order.id in self._seen:
                continue
            self._seen.add(order.id)
            fresh.append(order)
        if fresh:
            self._progress_since_resume = True
        cursor = page.cursor
        if cursor is None:
            self.done = True
        elif cursor in self._used_cursors:
            raise CursorDriftError(f"the partner repeated a cursor after {self.pages} pages: "
                                   "pagination would never end")
        elif self.pages >= self._max_pages:
            raise CursorDriftError(f"gave up after the page cap of {self._max_pages} pages")
        else:
            self._used_cursors.add(cursor)
            self._cursor = cursor
        return fresh

    def cursor_expired(self) -> None:
        """Resume from the watermark (inclusive); duplicates are filtered by id."""
        if not self._progress_since_resume:
            raise CursorDriftError("the partner expired our cursor again before any new "
                                   "order arrived")
        self._progress_since_resume = False
        self.resumes += 1
        self._cursor = None
        if self._watermark is not None:
            self._since = self._watermark
