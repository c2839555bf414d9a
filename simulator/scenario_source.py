"""Scenario text (YAML or JSON) to plain data, remembering each node's line,
and plain data back to scenario YAML.

JSON is read by the same YAML 1.2 parser, so a JSON scenario gets line
numbers too. Duplicate keys, tags and over-deep nesting are refused here:
they are the errors a dict from Python can never have.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent

from partnerkit.simulator.yaml_limits import ExpansionBudget, ExpansionError

MAX_SOURCE_BYTES = 1_000_000
MAX_DEPTH = 32
#: No field takes more; a larger literal is refused where it is read, before any
#: message could try to print its thousands of digits.
MAX_INTEGER = 2**256 - 1

#: Where a value sits in a scenario document: ("rules", 0, "fault") is rules[0].fault.
Where = tuple[str | int, ...]


def format_path(path: Where) -> str:
    """("rules", 0, "fault") -> "rules[0].fault"; the root is "$"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "$"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, and where."""

    path: str
    message: str
    line: int | None = None

    def render(self, source: str = "scenario") -> str:
        """One line, whatever the scenario held (control characters are escaped)."""
        where = f"{source}:{self.line}" if self.line is not None else source
        return _one_line(f"{where}: {self.path}: {self.message}")

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


@dataclass
class Located:
    """Plain data plus a map from node path to its 1-based line."""

    data: Any
    lines: dict[Where, int] = field(default_factory=dict)

    def line_of(self, path: Where) -> int | None:
        # The nearest ancestor that has a line: a missing key points at its mapping.
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class SourceError(ValueError):
    """The text is not a readable YAML/JSON document."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _key_text(key: Any) -> Any:
    """YAML reads `null:` or `true:` as non-string keys; JSON spells them as text."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    return key


def _plain(node: Any, path: Where, lines: dict[Where, int], depth: int,
           budget: ExpansionBudget) -> Any:
    budget.spend(1 + len(node) if isinstance(node, str) else 1, path)
    if depth > MAX_DEPTH:
        raise SourceError(Problem(format_path(path), f"nested deeper than {MAX_DEPTH} levels",
                                  lines.get(path)))
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(node, CommentedMap | CommentedSeq) and tag is not None:
        raise SourceError(Problem(format_path(path), f"unsupported YAML value (tag {tag})",
                                  lines.get(path)))
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for raw_key, value in node.items():
            key = _key_text(raw_key)
            child = (*path, str(key))
            try:
                lines[child] = node.lc.key(raw_key)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines[child] = lines.get(path, 1)
            if not isinstance(key, str):
                raise SourceError(Problem(format_path(child), "keys must be strings",
                                          lines[child]))
            result[key] = _plain(value, child, lines, depth + 1, budget)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            try:
                lines[child] = node.lc.item(index)[0] + 1
            except (KeyError, TypeError, AttributeError, IndexError):
                lines[child] = lines.get(path, 1)
            items.append(_plain(value, child, lines, depth + 1, budget))
        return items
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        if not -MAX_INTEGER <= node <= MAX_INTEGER:  # 0x + 5,000 digits is an int too
            raise SourceError(Problem(format_path(path), f"integer out of range (more than "
                                      f"{MAX_INTEGER.bit_length()} bits)", lines.get(path)))
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    tag = tag or type(node).__name__
    raise SourceError(Problem(format_path(path), f"unsupported YAML value (tag {tag})",
                              lines.get(path)))


class _TagRefused(ComposerError):
    def __init__(self, path: Where, tag: str, line: int) -> None:
        super().__init__(None, None, f"unsupported YAML value (tag {tag})")
        self.problem_path = path
        self.line = line


class _UntaggedComposer(Composer):
    """Refuses every explicit tag (`!!set`, `!!python/...`, `!foo`) as the parser meets it,
    before any constructor runs: a scenario is plain data, and some of ruamel's own
    constructors fail on odd tag and node pairings with errors that are not YAMLError.
    Keeps the path it is at, so the refusal says where."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._path: list[str | int] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            return super().compose_node(parent, index)
        part = index if isinstance(index, int) else getattr(index, "value", None)
        if part is not None:
            self._path.append(part if isinstance(part, int) else str(part))
        event = self.parser.peek_event()
        tag = getattr(event, "ctag", None)
        if tag is not None:
            raise _TagRefused(tuple(self._path), str(tag), event.start_mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            if part is not None:
                self._path.pop()


def _too_deep_flow(text: str) -> int | None:
    """The line where `[`/`{` nesting passes twice MAX_DEPTH, outside quotes, or None.

    The YAML parser would find it too, but only after recursing a thousand
    frames deep, which takes seconds: this scan takes milliseconds."""
    if text.count("[") + text.count("{") <= 2 * MAX_DEPTH:
        return None
    depth, line, quote = 0, 1, ""
    for char in text:
        if char == "\n":
            line += 1
        elif quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > 2 * MAX_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def load_source(text: str | bytes) -> Located:
    """Parse scenario text; raises SourceError with a line on any syntax fault."""
    if isinstance(text, bytes):
        if len(text) > MAX_SOURCE_BYTES:
            raise SourceError(Problem("$", f"larger than {MAX_SOURCE_BYTES} bytes", 1))
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(Problem("$", f"not UTF-8 (byte {exc.start})", 1)) from exc
    if len(text) > MAX_SOURCE_BYTES:
        raise SourceError(Problem("$", f"larger than {MAX_SOURCE_BYTES} characters", 1))
    if (line := _too_deep_flow(text)) is not None:
        raise SourceError(Problem("$", f"nested deeper than {MAX_DEPTH} levels", line))
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = _UntaggedComposer
    try:
        node = yaml.load(text)
    except _TagRefused as exc:
        raise SourceError(Problem(format_path(exc.problem_path), str(exc.problem), exc.line)
                          ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise SourceError(Problem("$", message, line)) from exc
    except (YAMLError, ValueError) as exc:
        raise SourceError(Problem("$", " ".join(str(exc).split())[:300], 1)) from exc
    except RecursionError as exc:
        raise SourceError(Problem("$", f"nested deeper than {MAX_DEPTH} levels", 1)) from exc
    lines: dict[Where, int] = {(): 1}
    try:
        return Located(_plain(node, (), lines, 0, ExpansionBudget(len(text))), lines)
    except ExpansionError as exc:
        where: Where = exc.where
        raise SourceError(Problem(format_path(where), "YAML aliases expand this document "
                                  "beyond its own size (an alias may share a value, not "
                                  "multiply it)", lines.get(where))) from None


def scenario_yaml(document: Mapping[str, Any], header: str = "") -> str:
    """A scenario document as YAML (small mappings inline, the rest as blocks, keys in
    their order), after `header` as a comment: a failing example's plan, the editor's text."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(json.loads(json.dumps(dict(document), default=str)), out)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + out.getvalue()
