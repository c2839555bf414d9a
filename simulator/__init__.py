"""partnersim: a scriptable fake of OrderOps' partner API."""

from partnerkit.simulator.app import PartnerApp, create_app
from partnerkit.simulator.journal_entry import JournalEntryJSON
from partnerkit.simulator.scenario import (
    Scenario,
    ScenarioError,
    load_scenario_file,
    parse_scenario,
)
from partnerkit.simulator.server import FakePartner, FaultProxy

__all__ = [
    "FakePartner",
    "FaultProxy",
    "JournalEntryJSON",
    "PartnerApp",
    "Scenario",
    "ScenarioError",
    "create_app",
    "load_scenario_file",
    "parse_scenario",
]
