"""What a header may hold so that both HTTP stacks will send it.

One rule for scenario fault headers and recorded cassette headers, checked
when they are loaded: a value the server would refuse to write fails every
matching request (httptools drops the connection on a control character,
h11 on leading or trailing whitespace), so it is refused at upload instead,
with where it is.
"""

from __future__ import annotations

import re

#: RFC 9110 token: the characters a header name may use.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Controls other than HTAB, DEL, anything that is not latin-1, or whitespace at either end.
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]|^[ \t]|[ \t]$")


def header_name_problem(name: str) -> str | None:
    if HEADER_NAME.fullmatch(name) is None:
        return "not a valid HTTP header name"
    return None


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a header value, or None when it can."""
    found = BAD_VALUE.search(value)
    if found is None:
        return None
    char = found.group()
    if char in " \t":
        return "header values cannot start or end with whitespace"
    if ord(char) > 0xFF:
        return f"header values must be latin-1 (found {char!r})"
    return f"header values cannot hold control characters (found {char!r})"


def unsendable_text(text: str) -> str | None:
    """Why `text` cannot be sent as UTF-8 (a lone surrogate such as "\\ud800"), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds {text[exc.start]!r}, which cannot be sent as UTF-8"
    return None
