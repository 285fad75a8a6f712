"""Actors shipped with gwproactor: simulated hardware, a bridge from device telemetry to
events, an HTTP poller. They are real examples of the framework, used by the demo."""

from gwproactor_actors.bridge import BridgeOptions, BridgeStats, TelemetryBridge
from gwproactor_actors.http_poller import HttpPoller, PollerOptions, PollError, PollerStats
from gwproactor_actors.messages import (
    REGISTRY,
    DeviceReading,
    DeviceTelemetry,
    HttpReading,
    RelaySet,
    RelayStateChanged,
    TemperatureReading,
)
from gwproactor_actors.relay import RelayActor, SimulatedRelayDriver
from gwproactor_actors.thermometer import SimulatedThermometerDriver, ThermometerActor

__all__ = (
    "REGISTRY",
    # simulated hardware
    "RelayActor",
    "SimulatedRelayDriver",
    "SimulatedThermometerDriver",
    "ThermometerActor",
    # bridge and poller
    "BridgeOptions",
    "BridgeStats",
    "HttpPoller",
    "PollError",
    "PollerOptions",
    "PollerStats",
    "TelemetryBridge",
    # messages and events
    "DeviceReading",
    "DeviceTelemetry",
    "HttpReading",
    "RelaySet",
    "RelayStateChanged",
    "TemperatureReading",
)
