"""Message and event types of the shipped actors, and the device telemetry the bridge reads."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, Strict

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


# Strict: a device that sends "21.5" or true as a reading has a bug worth seeing, not a value
# worth guessing at. NaN and infinities are not measurements either.
Reading = Annotated[float, Strict(), Field(allow_inf_nan=False)]

MAX_READINGS = 256
"""Most readings one telemetry message (or one HTTP poll) may carry."""


class DeviceTelemetry(BaseModel):
    """What a field device publishes on its local broker, as plain JSON (no gw/ envelope)::

        {"ts": 1763600000.123, "readings": {"temp_c": 21.5, "rh": 40}}

    ``ts``: when the device measured, in seconds since the epoch (optional: without it the
    bridge uses the time of arrival). ``readings``: 1 to :data:`MAX_READINGS` numbers by
    name. Unknown fields are ignored, so devices may add some. Not a gateway payload: it is
    never sent over a link and has no type name.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0)] | None = None
    readings: dict[str, Reading] = Field(min_length=1, max_length=MAX_READINGS)


class DeviceReading(Event):
    """One telemetry message of a field device, bridged from the local broker.

    ``device`` is the id taken from the telemetry topic; ``time_ns`` is the device's own
    timestamp when it sent one, else the time the bridge received the message; ``topic``
    is where it came from."""

    type_name: ClassVar[str] = "gw.device.reading"
    device: str
    readings: dict[str, float]
    topic: str = ""


class HttpReading(Event):
    """One successful poll of an HTTP endpoint: the values picked from its JSON answer."""

    type_name: ClassVar[str] = "gw.http.reading"
    url: str
    status: int
    values: dict[str, float]
    elapsed_ms: float = 0.0


REGISTRY = MessageRegistry(
    RelaySet, RelayStateChanged, TemperatureReading, DeviceReading, HttpReading
)
