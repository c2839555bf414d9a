"""Recording formats replay reads: VCR.py cassettes (`simulator.cassette`) and HAR 1.2
(`formats.har`). `load_recordings` picks one by the file's content."""

from __future__ import annotations

from pathlib import Path

from partnerkit.simulator.cassette import CassetteError, Interaction, parse_cassette
from partnerkit.simulator.formats.har import is_har, parse_har, read_har


def load_recordings(path: Path) -> list[Interaction]:
    """The interactions of a VCR.py cassette or a HAR file, or CassetteError."""
    return read_recordings(path)[0]


def read_recordings(path: Path) -> tuple[list[Interaction], list[str]]:
    """(interactions, notes on HAR entries skipped), or CassetteError."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CassetteError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
    if is_har(text, path.name):
        return read_har(text, str(path))
    return parse_cassette(text, str(path)), []


__all__ = ["load_recordings", "parse_har", "read_har", "read_recordings"]
