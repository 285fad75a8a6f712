"""Actors shipped with gwproactor: simulated hardware, a bridge from device telemetry to
events, an HTTP poller. They are real examples of the framework, used by the demo."""

from actors.messages import REGISTRY, RelaySet, RelayStateChanged, TemperatureReading
from actors.relay import RelayActor, SimulatedRelayDriver
from actors.thermometer import SimulatedThermometerDriver, ThermometerActor

__all__ = (
    "REGISTRY",
    "RelayActor",
    "RelaySet",
    "RelayStateChanged",
    "SimulatedRelayDriver",
    "SimulatedThermometerDriver",
    "TemperatureReading",
    "ThermometerActor",
)
