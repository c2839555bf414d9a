"""OrderOps' own order shapes: what the rest of OrderOps works with.

These speak OrderOps' language (`id`, `status`, `quantity`, money as
`Decimal`); the partner's names live only in `client.mapping`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class OrderStatus(enum.Enum):
    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    status: OrderStatus
    subtotal: Decimal
    currency: str
    customer_email: str | None
    lines: tuple[OrderLine, ...]
    updated_at: datetime  # timezone-aware, UTC
