"""partnersim: a scriptable fake of OrderOps' partner API."""

from simulator.app import PartnerApp, create_app
from simulator.scenario import Scenario, ScenarioError, load_scenario_file, parse_scenario
from simulator.server import FakePartner

__all__ = [
    "FakePartner",
    "PartnerApp",
    "Scenario",
    "ScenarioError",
    "create_app",
    "load_scenario_file",
    "parse_scenario",
]
