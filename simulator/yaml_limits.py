"""The limits every YAML file partnersim reads is held to: scenarios and cassettes alike.

YAML aliases let a few hundred bytes name a billion values ("billion
laughs"), or one 4 MiB string stand for a thousand: the parsers share the
aliased object, so loading is cheap, but whoever walks or copies the result
pays for every reference. The rule here is that aliases may *share*, never
*amplify*: the loaded document may not hold more values plus characters
than its text has bytes (plus a small allowance). A document without
aliases always passes, since every value and every character of a string
takes at least one byte of its source; a bomb is refused after at most that
many steps, whatever it would have expanded to.

Tags are restricted by each loader (scenarios take none, cassettes only the
ones VCR.py writes); the size of the text is bounded before parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Expanded values and characters allowed beyond the size of the text.
EXPANSION_ALLOWANCE = 4096


class ExpansionError(ValueError):
    """The document expands (through aliases) to more than its text holds; `where` says where
    (a path string, or whatever the walker that spent the budget uses as a path)."""

    def __init__(self, where: Any) -> None:
        super().__init__(f"{where}: YAML aliases expand this document beyond its own size "
                         "(an alias may share a value, not multiply it)")
        self.where = where


class ExpansionBudget:
    """Counts values and characters as a loaded document is walked."""

    __slots__ = ("left",)

    def __init__(self, text_size: int) -> None:
        self.left = text_size + EXPANSION_ALLOWANCE

    def spend(self, amount: int, where: Any) -> None:
        """Take `amount`; `where` (anything with a str) names the place if the budget runs out."""
        self.left -= amount
        if self.left < 0:
            raise ExpansionError(where)


def may_alias(text: str | bytes) -> bool:
    """False when the text cannot hold an alias at all (no `&` to anchor, or no `*`)."""
    if isinstance(text, bytes):
        return b"&" in text and b"*" in text
    return "&" in text and "*" in text


def check_expansion(data: Any, text_size: int) -> None:
    """Walk loaded data, raising ExpansionError where it passes the budget for `text_size`.

    Iterative, so depth costs no stack; the error names the path of the value
    that ran the budget out (`interactions[12].response`), built only then."""
    left = text_size + EXPANSION_ALLOWANCE
    stack: list[tuple[Any, _Where]] = [(data, None)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str | bytes):
            left -= 1 + len(value)
        elif isinstance(value, Mapping):
            left -= 1 + len(value)
            stack.extend((item, (where, key)) for key, item in value.items())
        elif isinstance(value, list | tuple):
            left -= 1
            stack.extend((item, (where, index)) for index, item in enumerate(value))
        else:
            left -= 1
        if left < 0:
            raise ExpansionError(_render(where))


_Where = tuple[Any, Any] | None  # (parent, key or index), linked up to the root's None


def _render(where: _Where) -> str:
    parts: list[Any] = []
    while where is not None:
        where, part = where
        parts.append(part)
    text = ""
    for part in reversed(parts):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "$"
