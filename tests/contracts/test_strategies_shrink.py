"""Strategies shrink to the simple case: the minimal plan of a failure is what
people replay, so it must carry nothing the failure does not need."""

from __future__ import annotations

from hypothesis import find, settings

from partnerkit.contracts.strategies import API_PATHS, faults, rules

QUIET = settings(database=None, max_examples=2_000)


def test_a_minimal_status_fault_is_only_the_status() -> None:
    minimal = find(faults(), lambda fault: "status" in fault, settings=QUIET)
    assert minimal == {"status": 429}


def test_a_minimal_rule_has_no_needless_budget_or_latency() -> None:
    minimal = find(rules(), lambda rule: rule["fault"].get("disconnect") == "reset",
                   settings=QUIET)
    assert minimal == {"match": {"path": API_PATHS[0]}, "times": 1,
                       "fault": {"disconnect": "reset"}}
