"""Path globs in time linear in the path, whatever the glob.

`*` matches within one path segment, `**` across segments, `?` one character
other than `/`. A regular expression with several stars backtracks: the glob
`/**a**a**a**a**a**a**a**a**b` against sixty `a`s is some 10**10 steps, and
one such request froze the server. Here the glob is a small NFA run
bit-parallel (one bit per glob position, Python ints as the bit vectors):
each path character costs a handful of integer operations, however many
stars the glob holds. A regular expression cannot backtrack badly when each
star has one segment to itself (a `*` cannot cross the `/` that ends it, so
it has one viable end) and there is at most one `**`; nearly every glob is
such (`/v1/orders/*`, `/v1/*/lines/**`), and keeps the regex, which is
several times faster on short paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: Globs longer than this are refused at validation.
MAX_GLOB_CHARS = 1024

_STAR, _GLOBSTAR, _ONE = "*", "**", "?"


def _elements(glob: str) -> list[str]:
    """The glob as elements: literal characters, `?`, `*` and `**`, runs of stars merged
    (`***` is `**`, `*` next to `**` is `**`): no two stars are adjacent after this."""
    elements: list[str] = []
    index = 0
    while index < len(glob):
        if glob[index] == "*":
            end = index
            while end < len(glob) and glob[end] == "*":
                end += 1
            star = _GLOBSTAR if end - index > 1 else _STAR
            if elements and elements[-1] in (_STAR, _GLOBSTAR):
                elements[-1] = _GLOBSTAR if _GLOBSTAR in (star, elements[-1]) else _STAR
            else:
                elements.append(star)
            index = end
        else:
            elements.append(glob[index])
            index += 1
    return elements


@dataclass(frozen=True, eq=False)
class PathGlob:
    """A compiled glob; `match(path)` is True when the whole path matches."""

    pattern: str
    _elements: tuple[str, ...] = field(init=False, repr=False)
    _stars: int = field(init=False, repr=False)     # positions of * and ** (epsilon moves)
    _globstars: int = field(init=False, repr=False)  # ** loops on any character
    _segment_stars: int = field(init=False, repr=False)  # * loops on anything but /
    _ones: int = field(init=False, repr=False)       # ? steps on anything but /
    _accept: int = field(init=False, repr=False)
    _regex: re.Pattern[str] | None = field(init=False, repr=False)
    _steps: dict[str, tuple[int, int]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        elements = tuple(_elements(self.pattern))
        setattr_ = object.__setattr__
        setattr_(self, "_elements", elements)
        setattr_(self, "_globstars", _mask(elements, lambda e: e == _GLOBSTAR))
        setattr_(self, "_segment_stars", _mask(elements, lambda e: e == _STAR))
        setattr_(self, "_stars", self._globstars | self._segment_stars)
        setattr_(self, "_ones", _mask(elements, lambda e: e == _ONE))
        setattr_(self, "_accept", 1 << len(elements))
        setattr_(self, "_regex", _regex(elements) if _backtracks_little(elements) else None)

    def _step_masks(self, char: str) -> tuple[int, int]:
        """(positions a character advances past, positions that loop on it)."""
        masks = self._steps.get(char)
        if masks is None:
            advance = _mask(self._elements, lambda e: e == char)
            loop = self._globstars
            if char != "/":
                advance |= self._ones
                loop |= self._segment_stars
            masks = (advance, loop)
            if len(self._steps) < 256:  # paths are mostly ASCII; bound the cache anyway
                self._steps[char] = masks
        return masks

    def match(self, path: str) -> bool:
        if self._regex is not None:
            return self._regex.match(path) is not None
        return self.match_linear(path)

    def match_linear(self, path: str) -> bool:
        """The bit-parallel NFA, whatever the glob (what `match` uses for risky ones)."""
        stars = self._stars
        state = 1
        state |= (state & stars) << 1
        for char in path:
            advance, loop = self._step_masks(char)
            state = ((state & advance) << 1) | (state & loop)
            if not state:
                return False
            state |= (state & stars) << 1
        return bool(state & self._accept)


def _mask(elements: tuple[str, ...], wanted: Callable[[str], bool]) -> int:
    """One bit per position whose element `wanted` accepts."""
    mask = 0
    for position, element in enumerate(elements):
        if wanted(element):
            mask |= 1 << position
    return mask


def _backtracks_little(elements: tuple[str, ...]) -> bool:
    """At most one `**`, and at most one star of either kind between two slashes."""
    if elements.count(_GLOBSTAR) > 1:
        return False
    stars_in_segment = 0
    for element in elements:
        if element == "/":
            stars_in_segment = 0
        elif element in (_STAR, _GLOBSTAR):
            stars_in_segment += 1
            if stars_in_segment > 1:
                return False
    return True


def _regex(elements: tuple[str, ...]) -> re.Pattern[str]:
    pieces = {_GLOBSTAR: ".*", _STAR: "[^/]*", _ONE: "[^/]"}
    return re.compile("".join(pieces.get(element, re.escape(element)) for element in elements)
                      + r"\Z", re.DOTALL)
