"""Partner API v1 as a well-behaved partner serves it: token, orders, acks.

Faults are not here: the fault middleware wraps these routes. Auth is
checked by the middleware too (before any rule), so routes assume a valid
bearer token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from partnerkit.simulator.answer import JSON_TYPE, Answer, json_bytes
from partnerkit.simulator.cursor import InvalidCursor, decode_cursor, encode_cursor
from partnerkit.simulator.dataset import parse_rfc3339, to_rfc3339
from partnerkit.simulator.openapi_doc import openapi_bytes
from partnerkit.simulator.state import PartnerState

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
MAX_FORM_BYTES = 16_384


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is larger than `limit` bytes:
    an oversized body is refused without being held in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18
                                                      or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class JsonRoute(Route):
    """A route that answers a wrong method with a JSON 405, without needing
    Starlette's exception middlewares (the partner API runs on a bare Router:
    they cost a third of a request's time)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = ", ".join(sorted(self.methods))
            await Answer.error(405, "method_not_allowed", "Method Not Allowed",
                               [(b"allow", allowed.encode())]).send(send)
            return
        await super().handle(scope, receive, send)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await Answer.error(404, "not_found", "Not Found").send(send)


class PartnerAPI:
    """The routes of partner API v1 over one PartnerState."""

    def __init__(self, state: PartnerState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        # The hot paths first: routes are matched in order.
        return [
            JsonRoute("/v1/orders/{order_id}", self.get_order, methods=["GET"]),
            JsonRoute("/v1/orders", self.list_orders, methods=["GET"]),
            JsonRoute("/v1/orders/{order_id}/acknowledgements", self.acknowledge,
                      methods=["POST"]),
            JsonRoute("/oauth/token", self.token, methods=["POST"]),
            JsonRoute("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def openapi(self, request: Request) -> Answer:
        return Answer.json_body(openapi_bytes())

    async def token(self, request: Request) -> Answer:
        body = await read_limited(request, MAX_FORM_BYTES)
        if body is None:
            return Answer.error(413, "request_too_large",
                                  f"a token request body is at most {MAX_FORM_BYTES} bytes")
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return Answer.error(400, "invalid_request", "form body is not UTF-8")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic[:6].lower() == "basic ":
            try:
                client_id, _, client_secret = (
                    base64.b64decode(basic[6:], validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return Answer.error(401, "invalid_client", "malformed Basic credentials")
        if form.get("grant_type") != "client_credentials":
            return Answer.error(400, "unsupported_grant_type",
                                  "grant_type must be client_credentials")
        if not (
            client_id is not None and client_secret is not None
            and hmac.compare_digest(client_id.encode(), self.state.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.state.client_secret.encode())
        ):
            return Answer.error(401, "invalid_client", "unknown client or wrong secret")
        ttl = self.state.scenario.dataset.token_ttl_s
        token = self.state.backend.issue_token(self.state.scenario.seed, ttl)
        return Answer.json(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": ttl},
            [(b"cache-control", b"no-store")],
        )

    async def list_orders(self, request: Request) -> Answer:
        params = request.query_params
        store = self.state.store
        limit = self.state.scenario.dataset.page_size
        if "limit" in params:
            raw = params["limit"]
            # isdigit() is true for '²' and '٣' too: only ASCII digits are an integer here.
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 200:
                return Answer.error(400, "invalid_request", "limit must be an integer 1-200")
            limit = int(raw)
        since = None
        if "updated_since" in params:
            try:
                since = to_rfc3339(parse_rfc3339(params["updated_since"]))
            except ValueError:
                return Answer.error(400, "invalid_request",
                                      "updated_since must be an RFC 3339 timestamp with offset")
        after = None
        if "cursor" in params:
            try:
                after = decode_cursor(params["cursor"])
            except InvalidCursor:
                return Answer.error(400, "invalid_cursor", "the cursor is not valid")
            since = after.since
        page = store.page(since, after, limit)
        next_cursor = encode_cursor(page.last) if page.last is not None else None
        body = page.prefix + b',"next_cursor":' + json.dumps(next_cursor).encode() + b"}"
        return Answer.json_body(body)

    async def get_order(self, request: Request) -> Answer:
        order_id = request.path_params["order_id"]
        body = self.state.store.get(order_id)
        if body is None:
            return Answer.error(404, "not_found", f"no order {order_id}")
        return Answer.json_body(body)

    async def acknowledge(self, request: Request) -> Answer:
        order_id = request.path_params["order_id"]
        if self.state.store.get(order_id) is None:
            return Answer.error(404, "not_found", f"no order {order_id}")
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            return Answer.error(400, "invalid_request",
                                  "Idempotency-Key must be 1-255 visible ASCII characters")
        body = json_bytes(
            {"order_id": order_id,
             "acknowledged_at": to_rfc3339(datetime.fromtimestamp(self.state.clock.time(), UTC))})
        status, body = self.state.backend.acknowledge(order_id, key, body)
        if status == 409:
            return Answer.error(409, "already_acknowledged",
                                  f"order {order_id} is already acknowledged")
        return Answer.json_body(body, status)


ORDER_PREFIX = "/v1/orders/"


class PartnerRouter:
    """The partner API as one ASGI app. `GET /v1/orders/{id}` of an existing
    order — the request every load test hammers — is answered directly; the
    rest goes through Starlette's Router (for it, routing, Request and
    Response were a third of the fake partner's time per request)."""

    def __init__(self, api: PartnerAPI) -> None:
        self.state = api.state
        self.router = Router(routes=api.routes(), default=not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] == "GET" and path.startswith(ORDER_PREFIX):
            order_id = path[len(ORDER_PREFIX):]
            body = self.state.store.get(order_id) if "/" not in order_id else None
            if body is not None:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", str(len(body)).encode()), (b"content-type", JSON_TYPE)]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.router(scope, receive, send)
