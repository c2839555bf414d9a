"""Partner JSON to OrderOps' DTOs: the only module that knows partner field names.

Parsing is strict (no NaN, no duplicate keys, UTF-8 without BOM, JSON
content type) and mapping is total: every field is checked for presence,
type and range, and any problem raises PartnerContractError naming the
field path, e.g. `lines[2].qty` (contracts M1, M2). Unknown extra fields
are ignored: the partner may add fields without breaking us.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from partnerkit.client.errors import PartnerContractError
from partnerkit.client.models import Order, OrderLine, OrderStatus

_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")
_STATUSES = {status.value: status for status in OrderStatus}


class _Invalid(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json(body: bytes, content_type: str | None) -> Any:
    """Strictly parse a partner body; PartnerContractError says what is wrong."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise PartnerContractError(f"expected a JSON body, got content type {media_type!r}")
    if not body:
        raise PartnerContractError("expected a JSON body, got an empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PartnerContractError(f"body is not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise PartnerContractError("body starts with a byte order mark")
    try:
        return json.loads(text, parse_constant=_reject_constant,
                          object_pairs_hook=_reject_duplicates)
    except RecursionError:
        raise PartnerContractError("body is nested too deeply") from None
    except ValueError as exc:
        raise PartnerContractError(f"body is not valid JSON: {exc}") from None


# --- field readers --------------------------------------------------------------------


def _field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _Invalid(path, "missing")
    return obj[key]


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected an object, got {_json_type(value)}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"expected a string, got {_json_type(value)}")
    if not value:
        raise _Invalid(path, "must not be empty")
    return value


def _integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {_json_type(value)}")
    if value < minimum:
        raise _Invalid(path, f"must be at least {minimum}, got {value}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _timestamp(value: Any, path: str) -> datetime:
    text = _string(value, path)
    if not _TIMESTAMP.match(text):
        raise _Invalid(path, f"expected an RFC 3339 timestamp with offset, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _Invalid(path, f"not a real date-time: {text!r}") from None
    return moment.astimezone(UTC)


def _cents(value: Any, path: str) -> Decimal:
    return Decimal(_integer(value, path, 0)).scaleb(-2)


def _line(raw: Any, path: str) -> OrderLine:
    line = _object(raw, path)
    return OrderLine(
        sku=_string(_field(line, "sku", f"{path}.sku"), f"{path}.sku"),
        quantity=_integer(_field(line, "qty", f"{path}.qty"), f"{path}.qty", 1),
        unit_price=_cents(_field(line, "unit_price_cents", f"{path}.unit_price_cents"),
                          f"{path}.unit_price_cents"),
    )


def _valid_order(raw: Any) -> Order | None:
    """The order when every field is valid — nearly always — checked without
    building a single error path; None sends it through `_order`, which says
    exactly what is wrong. Checks at least everything `_order` checks."""
    if type(raw) is not dict:
        return None
    try:
        state, customer, currency = raw["state"], raw["customer"], raw["currency"]
        raw_lines, order_id = raw["lines"], raw["order_id"]
        subtotal, updated = raw["subtotal_cents"], raw["updated_at"]
        customer_id, email = customer["id"], customer["email"]
    except (KeyError, TypeError):
        return None
    if not (type(state) is str and state in _STATUSES and type(customer) is dict
            and type(customer_id) is str and customer_id
            and (email is None or (type(email) is str and email))
            and type(currency) is str and _CURRENCY.match(currency)
            and type(raw_lines) is list and raw_lines
            and type(order_id) is str and order_id
            and type(subtotal) is int and subtotal >= 0
            and type(updated) is str and _TIMESTAMP.match(updated)):
        return None
    lines = []
    for line in raw_lines:
        if type(line) is not dict:
            return None
        sku, quantity, price = line.get("sku"), line.get("qty"), line.get("unit_price_cents")
        if not (type(sku) is str and sku and type(quantity) is int and quantity >= 1
                and type(price) is int and price >= 0):
            return None
        lines.append(OrderLine(sku, quantity, Decimal(price).scaleb(-2)))
    try:
        moment = datetime.fromisoformat(updated.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return Order(id=order_id, status=_STATUSES[state], subtotal=Decimal(subtotal).scaleb(-2),
                 currency=currency, customer_email=email, lines=tuple(lines),
                 updated_at=moment.astimezone(UTC))


def _order(raw: Any, prefix: str) -> Order:
    def at(name: str) -> str:
        return f"{prefix}{name}"

    order = _object(raw, prefix.rstrip(".") or "$")
    state = _string(_field(order, "state", at("state")), at("state"))
    if state not in _STATUSES:
        raise _Invalid(at("state"), f"unknown state {state!r} "
                                    f"(expected one of: {', '.join(_STATUSES)})")
    customer = _object(_field(order, "customer", at("customer")), at("customer"))
    _string(_field(customer, "id", at("customer.id")), at("customer.id"))
    email = _field(customer, "email", at("customer.email"))
    if email is not None:
        email = _string(email, at("customer.email"))
    currency = _string(_field(order, "currency", at("currency")), at("currency"))
    if not _CURRENCY.match(currency):
        raise _Invalid(at("currency"), f"expected an ISO 4217 code, got {currency!r}")
    raw_lines = _field(order, "lines", at("lines"))
    if not isinstance(raw_lines, list):
        raise _Invalid(at("lines"), f"expected an array, got {_json_type(raw_lines)}")
    if not raw_lines:
        raise _Invalid(at("lines"), "an order has at least one line")
    return Order(
        id=_string(_field(order, "order_id", at("order_id")), at("order_id")),
        status=_STATUSES[state],
        subtotal=_cents(_field(order, "subtotal_cents", at("subtotal_cents")),
                        at("subtotal_cents")),
        currency=currency,
        customer_email=email,
        lines=tuple(_line(item, at(f"lines[{index}]")) for index, item in enumerate(raw_lines)),
        updated_at=_timestamp(_field(order, "updated_at", at("updated_at")), at("updated_at")),
    )


def _contract_error(error: _Invalid, where: str) -> PartnerContractError:
    return PartnerContractError(f"partner {where} does not match the contract: "
                                f"{error.path}: {error.problem}", field=error.path)


# --- public mapping functions -------------------------------------------------------------


def map_order(payload: Any) -> Order:
    """One partner ORDER to an Order; field paths are relative to the order."""
    try:
        return _valid_order(payload) or _order(payload, "")
    except _Invalid as error:
        raise _contract_error(error, "order") from None


@dataclass(frozen=True)
class OrderPage:
    orders: tuple[Order, ...]
    cursor: str | None  # where the next page starts; None on the last page


def map_page(payload: Any) -> OrderPage:
    """A page of orders; an order's field paths are relative to that order
    (e.g. `lines[0].qty`), the message says which item of `data` it was."""
    try:
        page = _object(payload, "$")
        data = _field(page, "data", "data")
        if not isinstance(data, list):
            raise _Invalid("data", f"expected an array, got {_json_type(data)}")
        cursor = _field(page, "next_cursor", "next_cursor")
        if cursor is not None:
            cursor = _string(cursor, "next_cursor")
    except _Invalid as error:
        raise _contract_error(error, "page") from None
    orders = []
    for index, item in enumerate(data):
        try:
            orders.append(_valid_order(item) or _order(item, ""))
        except _Invalid as error:
            raise _contract_error(error, f"order data[{index}]") from None
    return OrderPage(tuple(orders), cursor)


@dataclass(frozen=True)
class Token:
    value: str
    lifetime_s: float

    def __repr__(self) -> str:
        return f"Token(value=<redacted>, lifetime_s={self.lifetime_s})"


def map_token(payload: Any) -> Token:
    try:
        body = _object(payload, "$")
        token = _string(_field(body, "access_token", "access_token"), "access_token")
        token_type = _string(_field(body, "token_type", "token_type"), "token_type")
        if token_type.lower() != "bearer":
            raise _Invalid("token_type", f"expected Bearer, got {token_type!r}")
        expires_in = _integer(_field(body, "expires_in", "expires_in"), "expires_in", 1)
    except _Invalid as error:
        raise _contract_error(error, "token response") from None
    return Token(token, float(expires_in))


def map_acknowledgement(payload: Any, order_id: str) -> None:
    """An acknowledgement answer must name the order it acknowledges."""
    if not isinstance(payload, dict) or payload.get("order_id") != order_id:
        raise PartnerContractError("acknowledgement answer does not name the order",
                                   field="order_id")


def error_code(payload: Any) -> str | None:
    """The `error` code of a partner error body, if it has one."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
    return None


def order_path(order_id: str) -> str:
    return f"/v1/orders/{order_id}"


def acknowledgement_path(order_id: str) -> str:
    return f"/v1/orders/{order_id}/acknowledgements"


ORDERS_PATH = "/v1/orders"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret


def list_params(limit: int | None, cursor: str | None,
                updated_since: datetime | None) -> dict[str, str]:
    """Query parameters of one page request, in the partner's names."""
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if cursor is not None:
        params["cursor"] = cursor
    elif updated_since is not None:
        params["updated_since"] = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return params


def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id,
            "client_secret": client_secret}

