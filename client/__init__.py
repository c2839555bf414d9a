"""The OrderOps partner client: explicit timeouts, retries, auth, pagination, mapping."""

from partnerkit.client._async import AsyncPartnerClient
from partnerkit.client._operation import RetryEvent
from partnerkit.client._sync import PartnerClient
from partnerkit.client.models import Order, OrderLine, OrderStatus
from partnerkit.client.retry import RetryPolicy

__all__ = [
    "AsyncPartnerClient",
    "Order",
    "OrderLine",
    "OrderStatus",
    "PartnerClient",
    "RetryEvent",
    "RetryPolicy",
]
