"""Every error the partner client raises: a small hierarchy under PartnerError.

Nothing else leaves the client (contract E1). Each error says which
operation failed, after how many attempts, and the last HTTP status seen,
and never carries a secret.
"""

from __future__ import annotations


class PartnerError(Exception):
    """Base of every error the partner client raises."""

    def __init__(self, message: str, *, operation: str = "", attempts: int = 0,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.attempts = attempts
        self.status = status

    def __str__(self) -> str:
        context = []
        if self.operation:
            context.append(self.operation)
        if self.attempts:
            context.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.status is not None:
            context.append(f"last status {self.status}")
        return f"{self.message} ({', '.join(context)})" if context else self.message


class PartnerTimeout(PartnerError):
    """The operation ran out of time: its deadline passed, or its last attempt timed out."""


class PartnerUnavailable(PartnerError):
    """The partner kept failing (5xx, dropped connections) until attempts or time ran out."""


class RateLimited(PartnerError):
    """The partner kept answering 429, or asked us to wait longer than we can."""

    def __init__(self, message: str, *, retry_after: float | None = None, operation: str = "",
                 attempts: int = 0, status: int | None = 429) -> None:
        super().__init__(message, operation=operation, attempts=attempts, status=status)
        self.retry_after = retry_after


class AuthenticationError(PartnerError):
    """The partner refused our credentials, or refused a freshly fetched token."""


class OrderNotFound(PartnerError):
    """The partner has no order with that id (404)."""

    def __init__(self, order_id: str, *, operation: str = "", attempts: int = 0) -> None:
        super().__init__(f"no order {order_id!r} at the partner", operation=operation,
                         attempts=attempts, status=404)
        self.order_id = order_id


class PartnerContractError(PartnerError):
    """The partner answered outside its contract: a broken body, a payload that
    does not match the schema (`field` names the path, e.g. `lines[2].qty`),
    or a status the contract does not allow."""

    def __init__(self, message: str, *, field: str | None = None, operation: str = "",
                 attempts: int = 0, status: int | None = None) -> None:
        super().__init__(message, operation=operation, attempts=attempts, status=status)
        self.field = field


class ReplayMiss(PartnerError):
    """A replayed partner (`partnersim replay`) had no recording for the request: a
    gap in the cassette, never an answer of the partner, so it maps to no outcome."""


class CursorDriftError(PartnerError):
    """Pagination could not finish safely: a repeated cursor, the page cap, or
    cursors that keep expiring."""


__all__ = [
    "AuthenticationError",
    "CursorDriftError",
    "OrderNotFound",
    "PartnerContractError",
    "PartnerError",
    "PartnerTimeout",
    "PartnerUnavailable",
    "RateLimited",
    "ReplayMiss",
]
