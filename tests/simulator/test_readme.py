"""The README's scenario examples are valid scenarios, and every fault kind has one."""

from __future__ import annotations

import re
from pathlib import Path

from partnerkit.simulator import parse_scenario
from partnerkit.simulator.scenario import ACTIONS
from partnerkit.simulator.state import dataset_faults

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_yaml_example_in_the_readme_is_a_valid_scenario() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        parse_scenario(block)


def test_the_readme_shows_every_fault_kind() -> None:
    examples = "".join(re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL))
    for kind in (*ACTIONS, "latency", "dribble", "one_of", "fixed_ms", "uniform_ms", "lognormal",
                 "reset", "mid_body", "hang", "insert", "update", "delete", "repeat", "expire",
                 "missing", "wrong_type", "null", "unknown_enum", "extra", "http-date"):
        assert f"{kind}" in examples, kind


def test_the_readme_storm_overlay_is_a_valid_replay_overlay() -> None:
    storm = re.search(r"cat > .partnerkit/storm.yaml <<'YAML'\n(.*?)YAML\n", README,
                      flags=re.DOTALL)
    assert storm is not None
    assert not dataset_faults(parse_scenario(storm.group(1)), "replay")
