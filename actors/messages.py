"""Message and event types of the shipped actors."""

from __future__ import annotations

from typing import ClassVar

from gwproactor import Event, MessageRegistry, Payload


class RelaySet(Payload):
    """Command: put the relay in the given position."""

    type_name: ClassVar[str] = "gw.relay.set"
    closed: bool


class RelayStateChanged(Event):
    """The relay moved (or was found) in a position."""

    type_name: ClassVar[str] = "gw.relay.state"
    relay: str
    closed: bool
    commanded_by: str = ""


class TemperatureReading(Event):
    type_name: ClassVar[str] = "gw.temperature"
    sensor: str
    celsius: float


REGISTRY = MessageRegistry(RelaySet, RelayStateChanged, TemperatureReading)
