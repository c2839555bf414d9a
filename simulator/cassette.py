"""VCR.py cassettes: read one whole, or write one an interaction at a time.

The format is VCR.py's YAML (version 1), so VCR.py, pytest-recording and
partnersim read the same files. Reading checks every field it uses, so a
truncated or hostile file is refused with where it went wrong instead of
failing later on a request.

partnersim writes `version: 1` first, then one interaction per line in
YAML's JSON-compatible flow style, appended as each completes: the file is
a valid cassette after every append (a crash loses nothing already
written), a diff shows each changed interaction as a line, and reading it
back needs only a JSON parser — 100,000 interactions load in seconds, where
a YAML parser takes a minute. Any other layout (VCR.py's own block style,
an interaction with a binary body) is read with libyaml's safe loader.
"""

from __future__ import annotations

import json
import os
import re
import threading
import zlib
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml

from partnerkit.simulator.http_fields import (
    BAD_VALUE,
    HEADER_NAME,
    header_name_problem,
    header_value_problem,
)
from partnerkit.simulator.redaction import redact_body, redact_header_lists, redact_query_string
from partnerkit.simulator.yaml_limits import ExpansionError, check_expansion, may_alias

CASSETTE_VERSION = 1
ABSOLUTE_URL = re.compile(r"https?://[^/?#\s]+", re.IGNORECASE)
MAX_PROBLEMS = 20
_NAME = HEADER_NAME.fullmatch
_BAD_VALUE = BAD_VALUE.search
Headers = dict[str, list[str]]


class _Message:
    """What a recorded request and response share: headers as VCR.py keeps them."""

    __slots__ = ()
    headers: Headers

    def header(self, name: str) -> str:
        """The first value of a header, by case-insensitive name ("" if absent)."""
        name = name.lower()
        for key, values in self.headers.items():
            if key.lower() == name and values:
                return values[0]
        return ""


@dataclass(frozen=True, slots=True)
class RecordedRequest(_Message):
    method: str
    uri: str
    body: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class RecordedResponse(_Message):
    status: int
    reason: str
    headers: Headers
    body: bytes
    #: How long the answer took when recorded (the response's `duration_ms`, a key
    #: VCR.py ignores and keeps; a HAR entry's `time`); None when not recorded.
    duration_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    request: RecordedRequest
    response: RecordedResponse


class CassetteError(ValueError):
    """A cassette was refused; each problem says where (`interactions[3].response…`)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


# --- reading -------------------------------------------------------------------------

class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, plus the harmless Python tags VCR.py itself writes."""


def _construct_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, f"{node.tag} on a collection",
                                                node.start_mark)
    return str(loader.construct_scalar(node))


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[Any, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, f"{node.tag} on a non-sequence",
                                                node.start_mark)
    return tuple(loader.construct_sequence(node))


_Loader.add_constructor("tag:yaml.org,2002:python/str", _construct_str)
# No field of a cassette is a date: a date-shaped scalar (`2001-13-45` too) stays text.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)
_Loader.add_constructor("tag:yaml.org,2002:python/unicode", _construct_str)
_Loader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)


class _Reader:
    """Turns loaded YAML into interactions, collecting every problem on the way."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.fail(where, f"expected a mapping, found {_kind(value)}")
        return None

    def body(self, value: Any, where: str, *, request: bool = False) -> bytes:
        if value is None:
            return b""
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if request and isinstance(value, Mapping | list):
            # VCR.py's aiohttp stub keeps a `json=` or `data=` body as the data itself.
            try:
                return json.dumps(value).encode()
            except (TypeError, ValueError, RecursionError):
                pass
        self.fail(where, f"expected a string, !!binary or null{_REQUEST_BODY if request else ''}"
                         f", found {_kind(value)}")
        return b""

    def headers(self, value: Any, where: str) -> Headers:
        if value is None:
            return {}
        if _plain_headers(value):
            return value  # type: ignore[no-any-return]
        if isinstance(value, list):  # VCR.py's tornado stub: [!!python/tuple [name, [values]]]
            pairs = []
            for index, pair in enumerate(value):
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    self.fail(f"{where}[{index}]", f"expected a (name, values) pair, as VCR.py's "
                                                   f"tornado stub writes, found {_kind(pair)}")
                    return {}
                pairs.append(pair)
            items: Any = pairs
        elif isinstance(value, Mapping):
            items = value.items()
        else:
            self.fail(where, f"expected a mapping of header names to values (or a list of "
                             f"(name, values) pairs, VCR.py's tornado shape), found {_kind(value)}")
            return {}
        headers: Headers = {}
        for name, values in items:
            here = f"{where}.{name}"
            if isinstance(values, str | int):
                values = [values]
            if not isinstance(name, str) or not isinstance(values, list | tuple) or not all(
                    isinstance(item, str | int) for item in values):
                self.fail(here, "expected a header name with a list of string values")
                continue
            if (problem := header_name_problem(name)) is not None:
                self.fail(here, problem)
                continue
            problems = [(index, problem) for index, item in enumerate(values)
                        if (problem := header_value_problem(str(item))) is not None]
            for index, problem in problems:
                self.fail(f"{here}[{index}]", problem)
            if not problems:
                headers.setdefault(name, []).extend(str(item) for item in values)
        return headers

    def request(self, value: Any, where: str) -> RecordedRequest | None:
        request = self.mapping(value, where)
        if request is None:
            return None
        method, uri = request.get("method"), request.get("uri")
        if not isinstance(method, str) or not method.isalpha():
            self.fail(f"{where}.method", f"expected an HTTP method, found {_shown(method)}")
            return None
        if not isinstance(uri, str) or not ABSOLUTE_URL.match(uri):
            self.fail(f"{where}.uri", f"expected an absolute http(s) URL, found {_shown(uri)}")
            return None
        return RecordedRequest(method.upper(), uri,
                               self.body(request.get("body"), f"{where}.body", request=True),
                               self.headers(request.get("headers"), f"{where}.headers"))

    def response(self, value: Any, where: str) -> RecordedResponse | None:
        response = self.mapping(value, where)
        if response is None:
            return None
        if "status_code" in response:  # httpx cassettes of VCR.py before 6.0
            code, reason, body = response.get("status_code"), "", response.get("content")
        else:
            status = self.mapping(response.get("status"), f"{where}.status") or {}
            code, reason = status.get("code"), status.get("message") or ""
            body_field = response.get("body")
            body = body_field.get("string") if isinstance(body_field, Mapping) else body_field
            if not isinstance(body_field, Mapping) and body_field is not None:
                self.fail(f"{where}.body", "expected a mapping with `string`")
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            self.fail(f"{where}.status.code", f"expected an HTTP status 200-599 (a 1xx is not "
                                              f"a final answer), found {_shown(code)}")
            return None
        duration = response.get("duration_ms")
        if duration is not None and not _is_duration(duration):
            self.fail(f"{where}.duration_ms", f"expected milliseconds, 0 to {MAX_DURATION_MS:,}, "
                                              f"found {_shown(duration)}")
            duration = None
        return RecordedResponse(code, str(reason), self.headers(response.get("headers"),
                                                               f"{where}.headers"),
                                self.body(body, f"{where}.body.string"),
                                float(duration) if duration is not None else None)


_REQUEST_BODY = " or a mapping (VCR.py's aiohttp stub writes json= and data= bodies so)"


def _plain_interaction(item: Any) -> Interaction | None:
    """The interaction when every field already has its expected type (nearly always),
    checked without building error locations; None sends it through the `_Reader`."""
    try:
        request, response = item["request"], item["response"]
        method, uri, body = request["method"], request["uri"], request["body"]
        status, answer = response["status"], response["body"]["string"]
        code, reason = status["code"], status["message"]
        headers, answer_headers = request["headers"], response["headers"]
    except (KeyError, TypeError):
        return None
    duration = response.get("duration_ms")
    if (type(method) is str and method.isalpha() and type(uri) is str
            and ABSOLUTE_URL.match(uri) is not None and type(body) is str
            and type(answer) is str and type(code) is int and 200 <= code <= 599
            and type(reason) is str and _plain_headers(headers)
            and _plain_headers(answer_headers)
            and (duration is None or _is_duration(duration))):
        return Interaction(
            RecordedRequest(method.upper(), uri, body.encode("utf-8", "surrogateescape"),
                            headers),
            RecordedResponse(code, reason, answer_headers,
                             answer.encode("utf-8", "surrogateescape"),
                             float(duration) if duration is not None else None))
    return None


MAX_DURATION_MS = 3_600_000  # an hour: no recorded answer is slower


def _checked_interaction(item: Any) -> Interaction | None:
    """`_plain_interaction` for an item whose every field was checked at load: only
    its layout is looked at again (None for another layout, which read_item reads)."""
    try:
        request, response = item["request"], item["response"]
        body, answer, status = request["body"], response["body"]["string"], response["status"]
        if type(body) is not str or type(answer) is not str \
                or type(request["headers"]) is not dict or type(response["headers"]) is not dict:
            return None
        return Interaction(
            RecordedRequest(request["method"].upper(), request["uri"],
                            body.encode("utf-8", "surrogateescape"), request["headers"]),
            RecordedResponse(status["code"], status["message"], response["headers"],
                             answer.encode("utf-8", "surrogateescape"),
                             response.get("duration_ms")))
    except (KeyError, TypeError, AttributeError):
        return None


def _is_duration(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value <= MAX_DURATION_MS


def _plain_headers(value: Any) -> bool:
    """Already {str: [str, ...]} of names and values both stacks can send, as nearly
    every cassette has it (the fast path); anything else goes through the `_Reader`,
    which says where it is wrong (a CR LF in a value, say, would have failed every
    request that replayed it)."""
    if type(value) is not dict:
        return False
    for name, values in value.items():
        if type(name) is not str or type(values) is not list or not _NAME(name):
            return False
        for item in values:
            if type(item) is not str or _BAD_VALUE(item):
                return False
    return True


def _shown(value: Any) -> str:
    """A found value for a message, cut short; a huge int is described (repr() would raise)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return f"{value!r:.60}"


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def _load_lines(text: bytes) -> dict[str, Any] | None:
    """The fast path: a cassette partnersim wrote, one JSON interaction per line.
    None for any other layout (or a damaged line), which YAML then reads and locates."""
    if not text.startswith(HEADER_BYTES):
        return None
    items = []
    for line in text[len(HEADER_BYTES):].split(b"\n"):
        if not line:
            continue
        if not line.startswith(b"- {"):
            return None
        try:
            items.append(orjson.loads(line[2:]))
        except orjson.JSONDecodeError:
            return None
    return {"version": CASSETTE_VERSION, "interactions": items}


def _load_yaml(text: str | bytes, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (CSafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise CassetteError(source, [f"{line}not valid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise CassetteError(source, [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise CassetteError(source, ["nested too deeply to be a cassette"]) from None
    except ValueError as exc:  # a scalar its constructor refuses: a 5,000-digit integer
        raise CassetteError(source, [f"not a valid value: {' '.join(str(exc).split())[:200]}"]
                            ) from None


def parse_cassette(text: str | bytes, source: str = "cassette") -> list[Interaction]:
    """The interactions of a cassette, or CassetteError saying what is wrong and where."""
    raw_text = text.encode("utf-8", "replace") if isinstance(text, str) else text
    data = _load_lines(raw_text)
    if data is None:
        data = _load_yaml(text, source)
        if may_alias(text):
            try:
                check_expansion(data, len(raw_text))
            except ExpansionError as exc:
                raise CassetteError(source, [str(exc)]) from None
    if not isinstance(data, Mapping) or "interactions" not in data:
        raise CassetteError(source, ["not a VCR.py cassette: expected a mapping with "
                                     "`interactions:` and `version: 1`"])
    if data.get("version") != CASSETTE_VERSION:
        raise CassetteError(source, [f"version: expected 1 (VCR.py's format), found "
                                     f"{_shown(data.get('version'))}"])
    raw = data["interactions"] or []
    if not isinstance(raw, list):
        raise CassetteError(source, [f"interactions: expected a list, found {_kind(raw)}"])
    reader = _Reader()
    interactions = []
    for index, item in enumerate(raw):
        plain = _plain_interaction(item)
        if plain is not None:
            interactions.append(plain)
            continue
        where = f"interactions[{index}]"
        entry = reader.mapping(item, where)
        if entry is None:
            continue
        request = reader.request(entry.get("request"), f"{where}.request")
        response = reader.response(entry.get("response"), f"{where}.response")
        if request is not None and response is not None:
            interactions.append(Interaction(request, response))
    if reader.problems:
        raise CassetteError(source, reader.problems)
    return interactions


def read_item(item: Any, index: int, source: str = "cassette") -> Interaction:
    """One loaded interaction item, checked as parse_cassette checks it."""
    plain = _plain_interaction(item)
    if plain is not None:
        return plain
    reader, where = _Reader(), f"interactions[{index}]"
    entry = reader.mapping(item, where)
    if entry is not None:
        request = reader.request(entry.get("request"), f"{where}.request")
        response = reader.response(entry.get("response"), f"{where}.response")
        if request is not None and response is not None and not reader.problems:
            return Interaction(request, response)
    raise CassetteError(source, reader.problems)


class LineCassette:
    """A cassette in partnersim's layout (one JSON interaction a line), indexed by
    where each line is, so only the lines asked for are ever held: a million
    interactions take the memory of their offsets, not of their bodies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets = array("Q")  # where each line starts, and the end of the last
        self.checksums = array("I")  # of each line as checked at load (see _index)
        self._fd = os.open(path, os.O_RDONLY)

    @classmethod
    def scan(cls, path: Path, visit: Callable[[Interaction], None]) -> LineCassette | None:
        """The indexed file, each interaction checked and handed to `visit` (which keys
        it and lets it go); None when the file is in any other layout (`visit` may
        have seen some of it by then)."""
        try:
            file = path.open("rb")
        except OSError as exc:
            raise CassetteError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
        with file:
            if file.read(len(HEADER_BYTES)) != HEADER_BYTES:
                return None
            cassette = cls(path)
            try:
                return cassette._index(file, visit)
            except BaseException:
                cassette.close()
                raise

    def _index(self, file: Any, visit: Callable[[Interaction], None]) -> LineCassette | None:
        offset, offsets, source = len(HEADER_BYTES), self.offsets, str(self.path)
        for line in file:
            if line.startswith(b"- {"):
                try:
                    item = orjson.loads(line[2:])
                except orjson.JSONDecodeError:
                    self.close()
                    return None
                plain = _plain_interaction(item)
                visit(plain if plain is not None else read_item(item, len(offsets), source))
                offsets.append(offset)
                # Only a line read by the fast path may skip its checks when served again.
                self.checksums.append((zlib.crc32(line) + (plain is None)) & 0xFFFFFFFF)
            elif line.strip():
                self.close()
                return None
            offset += len(line)
        offsets.append(offset)
        return self

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def read(self, number: int) -> Interaction:
        """The interaction on line `number`: a line unchanged since it was checked at
        load (same checksum) is built without checking its fields again."""
        start, end = self.offsets[number], self.offsets[number + 1]
        line = os.pread(self._fd, end - start, start)
        try:
            item = orjson.loads(line[2:])
        except orjson.JSONDecodeError:
            raise CassetteError(str(self.path), [
                f"interactions[{number}]: changed on disk since replay started"]) from None
        if zlib.crc32(line) == self.checksums[number]:
            checked = _checked_interaction(item)
            if checked is not None:
                return checked
        return read_item(item, number, str(self.path))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def load_cassette(path: Path) -> list[Interaction]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CassetteError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
    return parse_cassette(text, str(path))


# --- redaction -----------------------------------------------------------------------

def redact_interaction(interaction: Interaction) -> Interaction:
    """The interaction with every secret written as `<redacted>` (see simulator.redaction)."""
    request, response = interaction.request, interaction.response
    parts = urlsplit(request.uri)
    uri = urlunsplit(parts._replace(query=redact_query_string(parts.query)))
    return Interaction(
        replace(request, uri=uri, headers=redact_header_lists(request.headers),
                body=redact_body(request.body, request.header("content-type"))),
        replace(response, headers=redact_header_lists(response.headers),
                body=redact_body(response.body, response.header("content-type"))),
    )


# --- stable recordings ---------------------------------------------------------------

#: Headers that change on every run of the same exchange, and what becomes of them.
VOLATILE_HEADERS = {"date": None, "x-request-id": "<request-id>"}


def stable_headers(headers: Headers) -> Headers:
    stable: Headers = {}
    for name, values in headers.items():
        lowered = name.lower()
        if lowered not in VOLATILE_HEADERS:
            stable[name] = values
        elif (pinned := VOLATILE_HEADERS[lowered]) is not None:
            stable[name] = [pinned] * len(values)
    return stable


def stabilise_interaction(interaction: Interaction) -> Interaction:
    """Without what changes on every run (Date, X-Request-Id), so re-recording
    unchanged traffic gives an unchanged file and a diff shows real change."""
    request, response = interaction.request, interaction.response
    return Interaction(replace(request, headers=stable_headers(request.headers)),
                       replace(response, headers=stable_headers(response.headers)))


# --- writing -------------------------------------------------------------------------

def _text_or_binary(body: bytes) -> str | bytes:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body  # written as !!binary, as VCR.py does


def interaction_to_dict(interaction: Interaction) -> dict[str, Any]:
    request, response = interaction.request, interaction.response
    return {
        "request": {"body": _text_or_binary(request.body), "headers": request.headers,
                    "method": request.method, "uri": request.uri},
        "response": {"body": {"string": _text_or_binary(response.body)},
                     "headers": response.headers,
                     "status": {"code": response.status, "message": response.reason},
                     **({"duration_ms": response.duration_ms}
                        if response.duration_ms is not None else {})},
    }


HEADER = f"version: {CASSETTE_VERSION}\ninteractions:\n"
HEADER_BYTES = HEADER.encode()
_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f]", re.IGNORECASE)


def _item(interaction: Interaction) -> str:
    """One list item: a JSON line when YAML reads it as the same data, else block YAML."""
    data = interaction_to_dict(interaction)
    if isinstance(data["request"]["body"], str) and isinstance(
            data["response"]["body"]["string"], str):
        line = json.dumps(data, sort_keys=True)
        if not _SURROGATE_ESCAPE.search(line):  # libyaml refuses JSON's \ud83d-style pairs
            return f"- {line}\n"
    return yaml.dump([data], Dumper=yaml.CSafeDumper, default_flow_style=False,
                     allow_unicode=True, sort_keys=True, width=120)


def dump_cassette(interactions: list[Interaction]) -> str:
    """A whole cassette as text, in the layout the writer appends to."""
    if not interactions:
        return f"version: {CASSETTE_VERSION}\ninteractions: []\n"
    return HEADER + "".join(_item(interaction) for interaction in interactions)


class CassetteWriter:
    """Appends interactions to a cassette, each flushed before `write` returns.

    Thread-safe. With `append=True` an existing cassette keeps its
    interactions; otherwise the file is created by the first interaction, so
    a recording that never got an answer leaves no empty cassette behind.
    """

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        existing = load_cassette(path) if append and path.exists() else []
        self.count = len(existing)
        self._file: TextIO | None = None
        if existing:  # rewritten in one line per interaction, so appends stay valid
            self._replace(dump_cassette(existing))

    def _replace(self, text: str) -> None:
        """Write the whole file atomically (used while it is still small)."""
        temporary = self.path.with_name(f".{self.path.name}.partial")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path)

    def write(self, interaction: Interaction) -> None:
        with self._lock:
            if self.count == 0:  # `interactions: []` becomes a block list
                self._replace(HEADER + _item(interaction))
            else:
                if self._file is None:
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(_item(interaction))
                self._file.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
