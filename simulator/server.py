"""Running the fake partner on a real socket: in a thread for tests, or in
the foreground for `partnersim serve`.

Both use uvicorn with the fault-capable protocols; the default stack is the
fast one (httptools on uvloop). Shutdown first releases every request held
by a `hang` fault, so it is bounded whatever is in flight.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn
from starlette.types import ASGIApp

from partnerkit.simulator.app import create_app, create_proxy_app, create_replay_app
from partnerkit.simulator.backends import default_prefix, open_state
from partnerkit.simulator.cassette import CassetteWriter, Interaction
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.journal_entry import JournalEntryJSON
from partnerkit.simulator.protocols import HEAD_TIMEOUT_S, MAX_HEAD_BYTES, protocol_class
from partnerkit.simulator.proxy import ProxyState
from partnerkit.simulator.recorder import RecorderApp
from partnerkit.simulator.replay import (
    MissAnswer,
    RecordingIndex,
    ReplayState,
    describe_misses,
)
from partnerkit.simulator.scenario import Scenario, load_scenario_file, parse_scenario
from partnerkit.simulator.state import PartnerState
from partnerkit.simulator.upstream import CassetteTee, Upstream

HttpStack = Literal["httptools", "h11"]
SHUTDOWN_GRACE_S = 1.0
START_TIMEOUT_S = 10.0


def default_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PartnerServer(uvicorn.Server):
    """uvicorn's server, releasing held requests before it waits for them and
    closing the app's own resources after."""

    def __init__(self, config: uvicorn.Config, release: Callable[[], None] = lambda: None,
                 aclose: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(config)
        self.release = release
        self.aclose = aclose

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.release()
        await super().shutdown(sockets)
        if self.aclose is not None:
            await self.aclose()


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket and its URL (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


def make_config(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
                http: HttpStack = "httptools", log_config: Any = None,
                log_level: str = "warning", head_timeout_s: float = HEAD_TIMEOUT_S,
                max_head_bytes: int = MAX_HEAD_BYTES) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(http, head_timeout_s=head_timeout_s, max_head_bytes=max_head_bytes),
        loop=default_loop(),
        lifespan="off",
        access_log=False,  # an access log alone halves throughput; the journal is the log
        log_config=log_config,
        log_level=log_level,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=max_head_bytes,
        server_header=False,
        proxy_headers=False,
        date_header=True,
    )


def coerce_scenario(value: Scenario | Mapping[str, Any] | str | bytes | Path | None,
                    seed: int | None = None) -> Scenario | None:
    """A Scenario from a Scenario, dict, YAML/JSON text or a file path."""
    if value is None:
        scenario = None
    elif isinstance(value, Path):
        scenario = load_scenario_file(value)
    else:
        scenario = parse_scenario(value)
    if seed is not None:
        scenario = parse_scenario({**(scenario.source if scenario else {"rules": []}),
                                   "seed": seed})
    return scenario


class BackgroundServer:
    """A partnersim app on a real loopback socket, in a background thread.

    Shutdown is bounded (a few seconds at most) even with a `hang` in flight,
    and an exception on the server thread is raised by `close()`.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
                 http: HttpStack = "httptools", release: Callable[[], None] = lambda: None,
                 aclose: Callable[[], Awaitable[None]] | None = None,
                 head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        self._app = app
        self._head_timeout_s = head_timeout_s
        self._release = release
        self._aclose = aclose
        self._host = host
        self._port = port
        self._http: HttpStack = http
        self._thread: threading.Thread | None = None
        self._server: PartnerServer | None = None
        self._error: BaseException | None = None
        self.url = ""

    def start(self) -> Self:
        sock, self.url = bind(self._host, self._port)
        self._server = PartnerServer(make_config(self._app, http=self._http,
                                                 head_timeout_s=self._head_timeout_s),
                                     self._release, self._aclose)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"partnersim-{self.url.rsplit(':', 1)[1]}")
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                self._raise_thread_error(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # surfaced by start()/close()
            self._error = exc

    def _raise_thread_error(self, message: str) -> None:
        if self._error is not None:
            raise RuntimeError(f"{message}: {self._error!r}") from self._error
        raise RuntimeError(message)

    def close(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"the server at {self.url} did not stop within {timeout} s")
        if self._error is not None:
            self._raise_thread_error(f"{type(self).__name__} failed")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _PartnerControls(BackgroundServer):
    """What tests do with a running fake partner, served or replayed."""

    state: PartnerState

    @property
    def credentials(self) -> tuple[str, str]:
        return self.state.client_id, self.state.client_secret

    def set_scenario(self, scenario: Scenario | Mapping[str, Any] | str | bytes | Path) -> None:
        """Replace the scenario (budgets and data set restart; the journal stays).
        A bad scenario raises ScenarioError and the running one stays."""
        parsed = coerce_scenario(scenario)
        assert parsed is not None
        self.state.set_scenario(parsed)

    def journal(self) -> list[JournalEntryJSON]:
        """The journal entries, oldest first (as `GET /__sim/journal` gives them)."""
        return self.state.journal.entries()

    def clear_journal(self) -> None:
        self.state.journal.clear()

    def reset(self) -> None:
        """Budgets, journal and data set back to the start of the scenario."""
        self.state.reset()


class FakePartner(_PartnerControls):
    """The fake partner on a real loopback socket, in a background thread.

        with FakePartner({"rules": [...]}) as partner:
            httpx.get(partner.url + "/v1/orders", ...)
            partner.journal()
    """

    def __init__(self, scenario: Scenario | Mapping[str, Any] | str | bytes | Path | None = None,
                 *, seed: int | None = None, host: str = "127.0.0.1", port: int = 0,
                 http: HttpStack = "httptools", journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES, admin_token: str | None = None,
                 head_timeout_s: float = HEAD_TIMEOUT_S, state: str = "memory",
                 state_prefix: str | None = None) -> None:
        parsed = coerce_scenario(scenario, seed)
        prefix = state_prefix or default_prefix(parsed.name if parsed else "default")
        backend = open_state(state, prefix, journal_size=journal_size,
                             journal_bytes=journal_bytes)
        self.state: PartnerState = PartnerState(parsed, journal_size=journal_size,
                                                journal_bytes=journal_bytes, backend=backend)
        self.app = create_app(state=self.state, admin_token=admin_token)
        super().__init__(self.app, host=host, port=port, http=http,
                         release=self.state.waits.release_all, aclose=self.state.aclose,
                         head_timeout_s=head_timeout_s)


class ReplayMissError(AssertionError):
    """Requests had no recording: like VCR.py's record mode `none`, a test that
    caused a miss fails, naming the closest recordings."""


class ReplayPartner(_PartnerControls):
    """A cassette served as a fake partner (like `partnersim replay`), with an
    optional fault overlay; `reset()` rewinds every recording.

    `cassette` is a VCR.py cassette or a HAR file; `recorded_latency` (a factor)
    serves each answer after its recorded duration times it.
    A request with no recording gets `miss` (501 naming the closest recordings by
    default), and leaving the `with` block raises ReplayMissError unless
    `allow_misses` (or call `check_misses()` yourself)."""

    def __init__(self, cassette: Path | Sequence[Interaction], *,
                 faults: Scenario | Mapping[str, Any] | str | bytes | Path | None = None,
                 seed: int | None = None, match_body: bool = False, host: str = "127.0.0.1",
                 port: int = 0, http: HttpStack = "httptools", journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES, admin_token: str | None = None,
                 head_timeout_s: float = HEAD_TIMEOUT_S, miss: MissAnswer | None = None,
                 allow_misses: bool = False, recorded_latency: float | None = None,
                 state: str = "memory", state_prefix: str | None = None) -> None:
        self.index = RecordingIndex.from_file(cassette, match_body=match_body)[0] \
            if isinstance(cassette, Path) else RecordingIndex(cassette, match_body=match_body)
        self.allow_misses = allow_misses
        overlay = coerce_scenario(faults, seed)
        backend = open_state(state, state_prefix or default_prefix(
            "replay-" + (overlay.name if overlay else "empty")), journal_size=journal_size,
            journal_bytes=journal_bytes)
        self.state = ReplayState(self.index, overlay,
                                 cassette=str(cassette) if isinstance(cassette, Path)
                                 else "interactions", journal_size=journal_size,
                                 journal_bytes=journal_bytes, miss=miss,
                                 recorded_latency=recorded_latency, backend=backend)
        self.app = create_replay_app(self.state, admin_token=admin_token)
        super().__init__(self.app, host=host, port=port, http=http,
                         release=self.state.waits.release_all, aclose=self.state.aclose,
                         head_timeout_s=head_timeout_s)

    @property
    def misses(self) -> int:
        """Requests that had no recording since the start (or the last `reset()`)."""
        return self.index.misses

    def miss_details(self) -> list[dict[str, Any]]:
        """The latest misses, each with its closest recordings."""
        return list(self.index.recent_misses)

    def check_misses(self) -> None:
        """Raise ReplayMissError if any request had no recording."""
        if self.index.misses:
            raise ReplayMissError(describe_misses(self.index.recent_misses, self.index.misses))

    def close(self, timeout: float = 5.0) -> None:
        try:
            super().close(timeout)
        finally:
            self.index.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc_type is None and not self.allow_misses:
            self.check_misses()


class RecordingProxy(BackgroundServer):
    """A recording proxy to `upstream` (like `partnersim record`), writing `out`."""

    def __init__(self, upstream: str, out: Path, *, append: bool = False,
                 uri_base: str | None = None, timeout_s: float = 30.0, stable: bool = False,
                 host: str = "127.0.0.1", port: int = 0, http: HttpStack = "httptools",
                 head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        self.writer = CassetteWriter(out, append=append)
        self.app = RecorderApp(upstream, self.writer, uri_base=uri_base, timeout_s=timeout_s,
                               stable=stable)
        super().__init__(self.app, host=host, port=port, http=http, aclose=self.app.aclose,
                         head_timeout_s=head_timeout_s)

    def close(self, timeout: float = 5.0) -> None:
        try:
            super().close(timeout)
        finally:
            self.writer.close()

    @property
    def recorded(self) -> int:
        return self.writer.count


class FaultProxy(_PartnerControls):
    """A scenario's faults in front of one real upstream partner (like `partnersim
    proxy`), on a loopback socket in a background thread; `out` tees the clean
    answers into a cassette. `state` as `partnersim proxy --state`: several proxies
    on one Redis share budgets, revoked tokens and the journal.

        with FaultProxy("https://sandbox.partner.example", faults={"rules": [...]}) as proxy:
            client = PartnerClient.from_url(proxy.url, ...)
            proxy.journal()
    """

    def __init__(self, upstream: str,
                 faults: Scenario | Mapping[str, Any] | str | bytes | Path | None = None, *,
                 out: Path | None = None, append: bool = False, uri_base: str | None = None,
                 stable: bool = False, seed: int | None = None, timeout_s: float = 30.0,
                 host: str = "127.0.0.1", port: int = 0, http: HttpStack = "httptools",
                 journal_size: int = 10_000, journal_bytes: int = MAX_JOURNAL_BYTES,
                 admin_token: str | None = None, credentials: tuple[str, str] | None = None,
                 head_timeout_s: float = HEAD_TIMEOUT_S, state: str = "memory",
                 state_prefix: str | None = None) -> None:
        overlay = coerce_scenario(faults, seed)
        backend = open_state(state, state_prefix or default_prefix(
            "proxy-" + (overlay.name if overlay else "empty")), journal_size=journal_size,
            journal_bytes=journal_bytes)
        self.upstream = Upstream(upstream, timeout_s=timeout_s, forwarded=True)
        self._credentials = credentials
        self.writer = CassetteWriter(out, append=append) if out is not None else None
        tee = CassetteTee(self.writer, uri_base or self.upstream.url, stable=stable) \
            if self.writer is not None else None
        self.state: ProxyState = ProxyState(self.upstream, overlay, tee=tee,
                                            journal_size=journal_size,
                                            journal_bytes=journal_bytes, backend=backend)
        self.app = create_proxy_app(self.state, admin_token=admin_token)
        super().__init__(self.app, host=host, port=port, http=http,
                         release=self.state.waits.release_all, aclose=self._aclose_all,
                         head_timeout_s=head_timeout_s)

    async def _aclose_all(self) -> None:
        try:
            await self.upstream.aclose()
        finally:
            await self.state.aclose()

    def close(self, timeout: float = 5.0) -> None:
        try:
            super().close(timeout)
        finally:
            if self.writer is not None:
                self.writer.close()

    @property
    def credentials(self) -> tuple[str, str]:
        """The upstream's client credentials, as given (they are not the proxy's to check)."""
        return self._credentials or super().credentials

    @property
    def recorded(self) -> int:
        """Interactions written to `out` so far."""
        return self.writer.count if self.writer is not None else 0
