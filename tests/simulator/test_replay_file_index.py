"""Replay over an index of the cassette file: same answers as in memory, bodies read lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

from partnerkit.simulator.cassette import (
    CassetteError,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    dump_cassette,
)
from partnerkit.simulator.replay import RecordingIndex, RequestKey


def recording(path: str, body: bytes, status: int = 200) -> Interaction:
    return Interaction(RecordedRequest("GET", f"http://p.test{path}", b"", {}),
                       RecordedResponse(status, "OK", {"content-type": ["text/plain"]}, body,
                                        25.0))


RECORDINGS = [recording("/a", b"a1"), recording("/b?x=1", b"b"), recording("/a", b"a2", 201),
              recording("/c", "\u00e9t\u00e9".encode())]


def key(path: str, query: str = "") -> RequestKey:
    return RequestKey.of("GET", path, query, None)


def test_a_line_cassette_is_indexed_over_the_file_and_answers_as_in_memory(
        tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(dump_cassette(RECORDINGS))
    index, skipped = RecordingIndex.from_file(path)
    memory = RecordingIndex(RECORDINGS)
    assert skipped == [] and index._memory is None and index._file is not None
    for wanted in (key("/a"), key("/a"), key("/a"), key("/b", "x=1"), key("/c")):
        assert index.next_for(wanted) == memory.next_for(wanted)
    assert index.next_for(key("/nowhere")) is None
    assert index.closest(key("/a", "y=2"))[0]["path"] == "/a"
    assert index.stats() == {"interactions": 4, "distinct_requests": 3, "answered": 5,
                             "misses": 0}
    index.close()


def test_only_the_lines_asked_for_are_held(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(dump_cassette([recording(f"/n/{number}", b"x" * 100)
                                   for number in range(5000)]))
    index, _ = RecordingIndex.from_file(path)
    assert len(index._cache) == 0
    for number in range(4500):
        index.next_for(key(f"/n/{number}"))
    assert len(index._cache) <= 4096
    index.close()


def test_another_layout_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(dump_cassette([*RECORDINGS, recording("/bin", b"\xff\x00")]))  # !!binary
    index, _ = RecordingIndex.from_file(path)
    assert index._memory is not None and len(index) == 5
    assert index.next_for(key("/bin"))[1].response.body == b"\xff\x00"  # type: ignore[index]


def test_a_bad_line_is_refused_at_load_with_its_index(tmp_path: Path) -> None:
    lines = dump_cassette(RECORDINGS).splitlines(keepends=True)
    lines[4] = lines[4].replace('"code": 201', '"code": 99')
    path = tmp_path / "c.yaml"
    path.write_text("".join(lines))
    with pytest.raises(CassetteError, match=r"interactions\[2\]\.response\.status\.code"):
        RecordingIndex.from_file(path)
