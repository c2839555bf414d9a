"""An upstream of large bodies for the proxy bench: `GET /bulk?bytes=N` streams N bytes
in 64 KiB chunks with a Content-Length, never holding more than one chunk."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

CHUNK = 64 * 1024
BLOCK = b"x" * CHUNK
Message = MutableMapping[str, Any]


async def app(scope: Message, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    query = dict(pair.split("=", 1) for pair in scope["query_string"].decode().split("&")
                 if "=" in pair)
    total = int(query.get("bytes", "0"))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(total).encode())]})
    for offset in range(0, total, CHUNK):
        await send({"type": "http.response.body", "body": BLOCK[:total - offset],
                    "more_body": offset + CHUNK < total})
    if total == 0:
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
                access_log=False, log_level="warning", lifespan="off")
