"""The live dashboard at /__sim/ui: the journal as it grows, the rules and
their budgets, the scenario editor, the health figures.

The page is static (HTML, CSS, JS shipped in `ui_assets/`, no CDN) and talks
to the admin API for every change, so it can do nothing curl cannot. One
server-sent event stream, `/__sim/ui/events`, feeds it: the stream polls the
journal's tail a few times a second while a page is open, and nothing on the
request path knows it exists, so with no page open the fake partner does
exactly the work it did before. The page is served without the admin token
(it holds no data); everything it reads or changes asks for the token.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from partnerkit.simulator.admin_api import AdminAPI
from partnerkit.simulator.answer import Answer
from partnerkit.simulator.engine import FaultEngine
from partnerkit.simulator.scenario import Rule, Scenario
from partnerkit.simulator.scenario_source import scenario_yaml
from partnerkit.simulator.state import PartnerState

#: How often an open page's stream looks at the journal: well inside the 1 s a
#: new request may take to show, and only while a page is open.
TICK_S = 0.1
#: Under a flood (a full batch last time) the stream looks less often: nobody
#: reads thousands of rows a second, and the page's drawing shares the cores
#: with the fake partner it watches.
BUSY_TICK_S = 0.5
#: At most this many new entries per tick: a page shows the newest, and a
#: flood of traffic costs the stream (and the page) a bounded amount of work.
BATCH_LIMIT = 20
#: A page that opens gets this much of the journal's past first.
HISTORY = 100
#: In-flight entries a stream re-reads until they complete.
MAX_PENDING = 500
#: Health figures (uptime) refresh at least this often.
STATE_EVERY_S = 1.0
#: A comment line keeps idle proxies and the browser from closing the stream.
KEEPALIVE_S = 15.0

ASSETS: dict[str, str] = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The page loads only what the fake partner itself serves.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
READY_MADE_SUFFIXES = (".yaml", ".yml", ".json")


def _asset_dir() -> Traversable:
    return resources.files("partnerkit.simulator").joinpath("ui_assets")


def ready_made_dir() -> Traversable:
    """The scenarios shipped with partnerkit (the repository's `scenarios/`,
    packaged as `partnerkit/scenarios`)."""
    return resources.files("partnerkit").joinpath("scenarios")


def ready_made_scenarios() -> list[dict[str, str]]:
    """Each shipped scenario: its file name, the first sentence of its comment, its text."""
    folder = ready_made_dir()
    if not folder.is_dir():
        return []
    found = []
    for item in sorted(folder.iterdir(), key=lambda item: item.name):
        if not item.name.endswith(READY_MADE_SUFFIXES) or not item.is_file():
            continue
        text = item.read_text(encoding="utf-8")
        found.append({"file": item.name, "name": item.name.rsplit(".", 1)[0],
                      "summary": _summary(text), "text": text})
    return found


def _summary(text: str) -> str:
    """The first sentence of the file's leading comment."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    comment = " ".join(word for word in words if word)
    end = comment.find(". ")
    return comment if end < 0 else comment[:end + 1]


def _rule_view(rule: Rule, raw: Any, spent: int) -> dict[str, Any]:
    declared = raw if isinstance(raw, dict) else {}
    return {
        "index": rule.index,
        "label": rule.label,
        "match": declared.get("match", {}),
        "fault": declared.get("fault", {}),
        "times": rule.times,
        "after": rule.after,
        "every": rule.every,
        "probability": rule.probability,
        "spent": spent,
        "left": None if rule.times is None else max(0, rule.times - spent),
    }


def _sse(event: str, payload: Any) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {data}\n\n".encode()


class _Stream:
    """One open page: what it has been sent, and what it still waits for."""

    def __init__(self, state: PartnerState) -> None:
        self.state = state
        self.after = 0  # the newest seq sent
        self.pending: dict[int, None] = {}  # in-flight seqs, oldest first
        self.scenario: Scenario | None = None  # what the page was last told about
        self.engine: FaultEngine | None = None
        self.counts: tuple[Any, ...] = ()
        self.state_at = 0.0
        self.busy = False  # the last batch was full
        self.opened = False  # the first batch (the past) has been sent

    def entries(self, limit: int = BATCH_LIMIT) -> bytes | None:
        """New entries and the in-flight ones that completed since the last call;
        `skipped` counts what arrived too fast to send (not the past before the
        page opened)."""
        journal = self.state.journal
        history, self.opened = not self.opened, True
        first, new = journal.tail(self.after, limit)
        self.busy = len(new) == limit and not history
        skipped = 0
        if new and not history:
            skipped = max(0, new[0]["seq"] - max(self.after, first - 1) - 1)
        if new:
            self.after = new[-1]["seq"]
        updated = [entry for entry in journal.find(list(self.pending))
                   if entry["duration_ms"] is not None]
        for entry in updated:
            del self.pending[entry["seq"]]
        for seq in [seq for seq in self.pending if seq < first or not first]:
            del self.pending[seq]  # fell out of the ring, or the journal was cleared
        for entry in new:
            if entry["duration_ms"] is None:
                self.pending[entry["seq"]] = None
        while len(self.pending) > MAX_PENDING:
            del self.pending[next(iter(self.pending))]
        if not new and not updated:
            return None
        return _sse("entries", {"first": first, "entries": [*updated, *new],
                                "skipped": skipped})

    def snapshot(self, force: bool = False) -> bytes | None:
        state = self.state
        scenario, engine = state.scenario, state.engine
        spent = state.spent()
        first, _ = state.journal.tail(self.after, 0)
        counts = (tuple(spent), first, len(state.journal))
        # Identity, not equality: applying the same scenario again restarts its
        # budgets. Holding the objects (not their ids) means no id is reused.
        same = self.scenario is scenario and self.engine is engine and self.counts == counts
        now = time.monotonic()
        if not force and same and now - self.state_at < STATE_EVERY_S:
            return None
        shown: dict[str, Any] = {"name": scenario.name, "seed": scenario.seed}
        if self.scenario is not scenario:  # the YAML only when the scenario changed
            shown["yaml"] = scenario_yaml(scenario.source)  # comments are not kept
        self.scenario, self.engine, self.counts, self.state_at = scenario, engine, counts, now
        raw_rules = scenario.source.get("rules", [])
        rules = [_rule_view(rule, raw_rules[rule.index] if rule.index < len(raw_rules) else {},
                            spent[rule.index] if rule.index < len(spent) else 0)
                 for rule in scenario.rules]
        return _sse("state", {
            "started": state.started,  # a restarted fake partner is another one
            "health": state.describe(),
            "journal_first": first,
            "scenario": shown,
            "rules": rules,
        })


class Dashboard:
    """The routes of the dashboard, beside the admin API and behind its token."""

    def __init__(self, state: PartnerState, admin: AdminAPI) -> None:
        self.state = state
        self.admin = admin
        self._assets: dict[str, bytes] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/__sim/ui", self.page, methods=["GET"]),
            Route("/__sim/ui/", self.page, methods=["GET"]),
            Route("/__sim/ui/assets/{name}", self.asset, methods=["GET"]),
            Route("/__sim/ui/events", self.events, methods=["GET"]),
            Route("/__sim/ui/scenarios", self.scenarios, methods=["GET"]),
        ]

    def _read(self, name: str) -> bytes:
        if name not in self._assets:
            self._assets[name] = _asset_dir().joinpath(name).read_bytes()
        return self._assets[name]

    async def page(self, request: Request) -> Response:
        return Response(self._read("index.html"), media_type="text/html; charset=utf-8",
                        headers=SECURITY_HEADERS)

    async def asset(self, request: Request) -> Response | Answer:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Answer.error(404, "not_found", f"no dashboard asset {name!r}")
        return Response(self._read(name), media_type=ASSETS[name],
                        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})

    async def scenarios(self, request: Request) -> Answer:
        if denied := self.admin.denied(request):
            return denied
        return Answer.json(200, {"scenarios": ready_made_scenarios()})

    async def events(self, request: Request) -> Response | Answer:
        if denied := self.admin.denied(request):
            return denied
        return StreamingResponse(self._stream(), media_type="text/event-stream", headers={
            "cache-control": "no-store", "x-accel-buffering": "no"})

    async def _stream(self) -> AsyncIterator[bytes]:
        # Ends when the page goes away (Starlette cancels it) or the server stops
        # (the shutdown releases every wait of the fake partner, this one too).
        stream = _Stream(self.state)
        waits = self.state.waits
        yield b"retry: 1000\n\n"
        yield stream.snapshot(force=True) or b""
        yield stream.entries(HISTORY) or b""
        quiet_since = time.monotonic()
        while not waits.closing:
            sent = False
            for chunk in (stream.snapshot(), stream.entries()):
                if chunk is not None:
                    sent = True
                    yield chunk
            now = time.monotonic()
            if sent:
                quiet_since = now
            elif now - quiet_since >= KEEPALIVE_S:
                quiet_since = now
                yield b": keep-alive\n\n"
            await waits.sleep(BUSY_TICK_S if stream.busy else TICK_S)
