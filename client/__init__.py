"""The OrderOps partner client: explicit timeouts, retries, auth, pagination, mapping."""

from client._async import AsyncPartnerClient
from client._operation import RetryEvent
from client._sync import PartnerClient
from client.models import Order, OrderLine, OrderStatus
from client.retry import RetryPolicy

__all__ = [
    "AsyncPartnerClient",
    "Order",
    "OrderLine",
    "OrderStatus",
    "PartnerClient",
    "RetryEvent",
    "RetryPolicy",
]
