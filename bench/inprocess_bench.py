"""The fake partner's own cost per request, in process: the microscope for the hot path.

    .venv/bin/python bench/inprocess_bench.py [--requests 20000] [--rounds 5]
        [--root DIR ...] [--profile]

`GET /v1/orders/ORD-000001` with a valid token, the journal on, an empty
scenario, three ways: straight into the ASGI app (`await app(scope, receive,
send)`, no server, no client: what the fake partner adds is all there is),
the same into a bare Starlette app serving the same bytes (bench/bare_app.py),
and through `simulator.inprocess.InProcessTransport` with an httpx client.
Each `--root` is a checkout whose `partnerkit` is measured (default: this
one), each in a fresh process, rounds interleaved, best round kept: run
main's tree and a branch's side by side. `--profile` prints a cProfile of
the fake partner's ASGI loop instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ORDER_PATH = "/v1/orders/ORD-000001"


def _scope(token: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": ORDER_PATH,
            "raw_path": ORDER_PATH.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"),
                        (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 50_000), "server": ("127.0.0.1", 8080)}


async def _asgi_loop(app: Any, token: str, requests: int) -> float:
    """Seconds for `requests` calls of the app (a fresh scope each, as a server makes)."""
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    started = time.perf_counter()
    for _ in range(requests):
        await app(_scope(token), receive, send)
    return time.perf_counter() - started


async def _transport_loop(app: Any, token: str, requests: int) -> float:
    import httpx

    from partnerkit.simulator.inprocess import InProcessTransport

    async with httpx.AsyncClient(transport=InProcessTransport(app), base_url="http://partner",
                                 headers={"authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        for _ in range(requests):
            response = await client.get(ORDER_PATH)
            assert response.status_code == 200
        return time.perf_counter() - started


async def _socket_loop(app: Any, protocol_class: type[Any], token: str, requests: int) -> float:
    """Seconds for `requests` requests over one keep-alive connection of a socket pair:
    uvicorn's protocol (`protocol_class`) on one end, the app behind it, this loop
    writing each request and reading its whole answer on the other end."""
    import socket

    import uvicorn
    from uvicorn.server import ServerState

    loop = asyncio.get_running_loop()
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                            server_header=False, proxy_headers=False, http=protocol_class)
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Wed, 02 Dec 2026 01:50:00 GMT")]
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    await loop.connect_accepted_socket(
        lambda: protocol_class(config=config, server_state=state, app_state={}, _loop=loop),
        theirs)
    request = (f"GET {ORDER_PATH} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()

    async def exchange() -> None:
        await loop.sock_sendall(ours, request)
        got, length = b"", -1
        while length < 0 or len(got) < length:
            chunk = await loop.sock_recv(ours, 65536)
            if not chunk:
                raise RuntimeError(f"the server closed the connection after {got!r}")
            got += chunk
            if length < 0 and b"\r\n\r\n" in got:
                head = got.partition(b"\r\n\r\n")[0]
                size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length"))
                length = len(head) + 4 + size

    for _ in range(1_000):  # warm-up
        await exchange()
    started = time.perf_counter()
    for _ in range(requests):
        await exchange()
    elapsed = time.perf_counter() - started
    ours.close()
    return elapsed


def _apps() -> tuple[Any, Any, str]:
    sys.path.insert(0, str(BENCH))
    from bare_app import app as bare

    from partnerkit.simulator.app import create_app

    partner = create_app()
    token = partner.state.backend.issue_token(0, 86_400)
    return bare, partner, token


def child(requests: int) -> dict[str, float]:
    """One round in this process: µs per request of each way."""
    bare, partner, token = _apps()

    async def run() -> dict[str, float]:
        await _asgi_loop(partner, token, 2_000)  # warm-up
        await _asgi_loop(bare, token, 2_000)
        return {"bare_asgi": await _asgi_loop(bare, token, requests),
                "partner_asgi": await _asgi_loop(partner, token, requests),
                "partner_transport": await _transport_loop(partner, token, requests)}

    seconds = asyncio.run(run())
    seconds.update(_socket_round(bare, partner, token, requests))
    return {name: value / requests * 1e6 for name, value in seconds.items()}


def _socket_round(bare: Any, partner: Any, token: str, requests: int) -> dict[str, float]:
    """The same request over a socket, on the stacks of bench/run.py (uvloop, httptools):
    uvicorn's own protocol for the bare app, partnersim's for the fake partner."""
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from partnerkit.simulator.protocols import PROTOCOLS

    async def run() -> dict[str, float]:
        return {
            "bare_socket": await _socket_loop(bare, HttpToolsProtocol, token, requests),
            "partner_socket": await _socket_loop(partner, PROTOCOLS["httptools"], token,
                                                 requests)}

    return uvloop.run(run())


def profile(requests: int) -> None:
    import cProfile
    import pstats

    _, partner, token = _apps()
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_asgi_loop(partner, token, requests))
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", action="append", default=[],
                        help="a checkout to measure (repeatable; default: this one)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.requests)))
        return 0
    roots = [str(Path(root).resolve()) for root in args.root] or [str(BENCH.parent)]
    if args.profile:
        sys.path.insert(0, roots[0])
        profile(args.requests)
        return 0
    best: dict[str, dict[str, float]] = {root: {} for root in roots}
    for _ in range(args.rounds):
        for root in roots:
            # The checkout's `partnerkit` first on the path: cwd of `python -c`.
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                                  "--requests", str(args.requests)], cwd=root, check=True,
                                 capture_output=True, text=True, timeout=600,
                                 env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}).stdout
            for name, value in json.loads(out).items():
                best[root][name] = min(value, best[root].get(name, float("inf")))
    print(f"µs per request, best of {args.rounds} interleaved rounds of {args.requests:,}")
    print("| checkout | bare ASGI | partner ASGI | partner / bare | bare socket "
          "| partner socket | bare / partner (socket) | partner via InProcessTransport |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for root, figures in best.items():
        print(f"| {root} | {figures['bare_asgi']:.1f} | {figures['partner_asgi']:.1f} | "
              f"{figures['partner_asgi'] / figures['bare_asgi']:.2f} | "
              f"{figures['bare_socket']:.1f} | {figures['partner_socket']:.1f} | "
              f"{figures['bare_socket'] / figures['partner_socket']:.2f} | "
              f"{figures['partner_transport']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
