"""A bad scenario is refused with every error and where it is; a running
fake partner keeps the scenario it had."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from partnerkit.simulator import FakePartner, ScenarioError, load_scenario_file, parse_scenario

BAD_YAML = """\
name: broken
seed: -1
dataset: {orders: lots, page_size: 500}
rules:
  - match: {methd: GET, path: v1/orders}
    fault: {status: 200}
  - fault: {latency: {fixed_ms: -5}, malformed: nonsense}
  - times: 0
  - fault: {status: 503, malformed: bom}
  - fault: {disconnect: reset}
    probability: 1.5
"""


def _problems(source: object) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(source)  # type: ignore[arg-type]
    return [(p.path, p.line, p.message) for p in caught.value.problems]


def test_every_error_is_reported_with_its_yaml_line() -> None:
    problems = _problems(BAD_YAML)
    where = {(path, line) for path, line, _ in problems}
    assert ("seed", 2) in where
    assert ("dataset.orders", 3) in where
    assert ("dataset.page_size", 3) in where
    assert ("rules[0].match.methd", 5) in where
    assert ("rules[0].match.path", 5) in where
    assert ("rules[0].fault.status", 6) in where
    assert ("rules[1].fault.latency.fixed_ms", 7) in where
    assert ("rules[1].fault.malformed", 7) in where
    assert ("rules[2]", 8) in where  # missing 'fault'
    assert ("rules[2].times", 8) in where
    assert ("rules[3].fault", 9) in where  # two actions
    assert ("rules[4].probability", 11) in where
    messages = " ".join(message for _, _, message in problems)
    assert "did you mean 'method'" in messages
    assert "'nonsense' is not one of" in messages


def test_json_scenarios_get_lines_too(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"rules": [{"fault": {"status": 503}},
                                          {"fault": {"rate_limit": {"limit": 0}}}]}, indent=2))
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(file)
    rendered = str(caught.value)
    assert f"{file}:" in rendered
    paths = {(p.path, p.line) for p in caught.value.problems}
    assert ("rules[1].fault.rate_limit.limit", 11) in paths
    assert ("rules[1].fault.rate_limit", 10) in paths  # missing per_s


def test_dicts_get_json_paths() -> None:
    problems = _problems({"rules": [{"fault": {"cursor_drift": {"insert": "five"}}}]})
    assert problems == [("rules[0].fault.cursor_drift.insert", None,
                         "expected an integer, got a string")]


@pytest.mark.parametrize(("source", "path", "fragment"), [
    ("rules: [\n  {fault: }\n", "$", ""),  # YAML syntax
    ("a: 1\na: 2\nrules: []\n", "$", "duplicate key"),
    ("rules: !!python/object:os.system [ls]\n", "rules", "unsupported YAML value"),
    ("- just\n- a list\n", "$", "expected a mapping"),
    ("name: x\n", "$", "missing required key 'rules'"),
    ("rules: {a: 1}\n", "rules", "expected a list"),
    ("rules: [{fault: {}}]\n", "rules[0].fault", "a fault needs"),
    ("rules: [{fault: {retry_after: 1, latency: {fixed_ms: 1}}}]\n",
     "rules[0].fault.retry_after", "only goes with 'status'"),
    ("rules: [{fault: {latency: {fixed_ms: 1, uniform_ms: [1, 2]}}}]\n",
     "rules[0].fault.latency", "exactly one of"),
    ("rules: [{fault: {latency: {uniform_ms: [5, 1]}}}]\n",
     "rules[0].fault.latency.uniform_ms", "above high"),
    ("rules: [{fault: {latency: {lognormal: {median_ms: 10}}}}]\n",
     "rules[0].fault.latency.lognormal", "missing required key 'sigma'"),
    ("rules: [{fault: {dribble: {chunk_bytes: 0, interval_ms: 5}}}]\n",
     "rules[0].fault.dribble.chunk_bytes", "between 1 and"),
    ("rules: [{fault: {status: 503, retry_after: soon}}]\n",
     "rules[0].fault.retry_after", "http-date:N"),
    ("rules: [{fault: {status: 503, headers: {'bad header': x}}}]\n",
     "rules[0].fault.headers.bad header", "not a valid HTTP header name"),
    ("rules: [{fault: {schema_drift: {missing: ['lines[0]..qty']}}}]\n",
     "rules[0].fault.schema_drift.missing[0]", "not a field path"),
    ("rules: [{fault: {schema_drift: {}}}]\n", "rules[0].fault.schema_drift", "at least one"),
    ("rules: [{fault: {cursor_drift: {repeat: false}}}]\n",
     "rules[0].fault.cursor_drift.repeat", "expected true"),
    ("rules: [{fault: {auth: expire_all}}]\n", "rules[0].fault.auth", "not one of"),
    ("rules: [{fault: {one_of: []}}]\n", "rules[0].fault.one_of", "non-empty list"),
    ("rules: [{fault: {one_of: [{weight: 0, status: 503}]}}]\n",
     "rules[0].fault.one_of[0].weight", "greater than 0"),
    ("rules: [{fault: {one_of: [{status: 503}], latency: {fixed_ms: 1}}}]\n",
     "rules[0].fault", "cannot be combined"),
    ("rules: [{match: {method: FETCH}, fault: {status: 503}}]\n",
     "rules[0].match.method", "not an HTTP method"),
    ("rules: [{match: {query: {limit: [1]}}, fault: {status: 503}}]\n",
     "rules[0].match.query.limit", "expected a string"),
    ("rules: [{every: true, fault: {status: 503}}]\n", "rules[0].every", "expected an integer"),
    ("rules: [{after: 99999999999999999999, fault: {status: 503}}]\n", "rules[0].after",
     "between 0 and"),
    ("seed: 1.5\nrules: []\n", "seed", "expected an integer"),
    ("rules: []\nextra: 1\n", "extra", "unknown key"),
    ("rules: []\n" + "x: " + "[" * 40 + "]" * 40 + "\n", "x", "nested deeper"),
])
def test_each_kind_of_error_is_located(source: str, path: str, fragment: str) -> None:
    problems = _problems(source)
    assert any((p == path or p.startswith(f"{path}[")) and fragment in message and line is not None
               for p, line, message in problems), problems


def test_not_utf8_and_too_large_are_refused() -> None:
    assert "not UTF-8" in _problems(b"rules: []\n\xff\xfe")[0][2]
    assert "larger than" in _problems(b"#" * 1_000_001)[0][2]


def test_admin_put_refuses_a_bad_scenario_and_keeps_the_running_one(
        partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"name": "good", "rules": [{"fault": {"status": 503}}]})
    refused = httpx.put(f"{partner.url}/__sim/scenario", content=BAD_YAML.encode())
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "invalid_scenario"
    assert len(body["problems"]) >= 12
    assert {"path": "seed", "line": 2, "message": "must be between 0 and 9223372036854775807, "
            "got -1"} in body["problems"]
    assert partner.state.scenario.name == "good"
    assert http.get("/v1/orders").status_code == 503  # still running the good one


def test_python_api_refuses_a_bad_scenario_and_keeps_the_running_one(
        partner: FakePartner) -> None:
    partner.set_scenario({"name": "good", "rules": []})
    with pytest.raises(ScenarioError, match="rules"):
        partner.set_scenario({"rules": [{"fault": {"status": "503"}}]})
    assert partner.state.scenario.name == "good"


def test_unreadable_file_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario_file(tmp_path / "missing.yaml")
