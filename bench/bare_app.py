"""The baseline: a bare Starlette app serving the same order bytes as the fake
partner, on the same server stack (uvicorn, httptools, uvloop, no access log)."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partnerkit.simulator.dataset import DatasetSpec, build_store

STORE = build_store(0, DatasetSpec())


async def order(request: Request) -> Response:
    body = STORE.get(request.path_params["order_id"])
    if body is None:
        return Response(b'{"error":"not_found"}', status_code=404, media_type="application/json")
    return Response(body, media_type="application/json")


app = Starlette(routes=[Route("/v1/orders/{order_id}", order)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
                access_log=False, log_level="warning", server_header=False, proxy_headers=False)
