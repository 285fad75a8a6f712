"""A bridge from field devices' plain JSON telemetry on a local broker to upstream events.

Field devices rarely speak the gateway's envelope: they publish small JSON documents on
topics of their own, on a broker next to them. The bridge subscribes to those topics on a
link of the gateway (a raw subscription, outside ``gw/``) and turns every valid message
into a durable :class:`~actors.messages.DeviceReading` event, which the gateway stores
and uploads to its upstream link like any other event.

Deliberately one-way: the bridge publishes nothing back to the devices (no ``ack`` topic).
A device that needs to know its message reached the broker has its PUBACK (QoS 1); what
happens after that is the gateway's job, and an application-level acknowledgement would
promise more than the bridge can see at that point.

The link to the devices' broker has role ``broker``: a plain broker with no gateway behind
it, active once connected and subscribed, with no pings and no presence messages.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from result import Err, Ok, Result

from gwproactor import QOS, Actor, ActorSettings, Message, Payload, ServicesInterface, StoreError
from gwproactor.wire.message import RawMessage
from gwproactor_actors.messages import DeviceReading, DeviceTelemetry

__all__ = (
    "NO_DEVICE",
    "OTHER_DEVICES",
    "BridgeOptions",
    "BridgeStats",
    "TelemetryBridge",
    "device_of",
    "parse_telemetry",
)

NO_DEVICE = "(none)"
"""The key under which messages on a topic without a device id are counted."""

OTHER_DEVICES = "(other)"
"""The key under which malformed messages are counted once ``max_tracked_devices``
different devices have been seen (device ids come from the wire; the count stays bounded)."""


class BridgeOptions(BaseModel):
    """The bridge's ``options`` table. Unknown keys are an error (a typo must not be
    silently ignored); so is a ``device_level`` the filter cannot have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link: str = Field(default="local", description="the link to the local broker")
    filter: str = Field(default="devices/+/telemetry", description="MQTT filter to bridge")
    device_level: int = Field(default=1, ge=0, description="topic level holding the device id")
    qos: QOS | None = Field(default=None, description="subscription QoS (default: the link's)")
    max_payload_bytes: int = Field(
        default=64 * 1024, ge=16, description="bigger telemetry is malformed, not parsed"
    )
    max_tracked_devices: int = Field(
        default=1000, ge=1, description="devices with their own malformed-message count"
    )

    @model_validator(mode="after")
    def _level_in_filter(self) -> BridgeOptions:
        levels = self.filter.split("/")
        if not self.filter:
            raise ValueError("filter is empty")
        # A '#' before the device level can match topics deep enough; anything else must
        # have the level itself.
        if "#" not in levels[: self.device_level + 1] and self.device_level >= len(levels):
            raise ValueError(
                f"device_level {self.device_level} is past the last level of {self.filter!r}"
            )
        return self


@dataclass
class BridgeStats:
    """Counts since start. ``received`` = ``malformed_total`` + messages turned into events;
    of those, ``stored`` were committed and ``refused`` were refused by the store (which
    has reported why)."""

    received: int = 0
    stored: int = 0
    refused: int = 0
    malformed: Counter[str] = field(default_factory=Counter)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


def device_of(topic: str, level: int) -> str | None:
    """The device id at topic level ``level`` (0-based), or None if the topic has no such
    level or it is empty."""
    levels = topic.split("/")
    if level >= len(levels) or not levels[level]:
        return None
    return levels[level]


def parse_telemetry(data: bytes, max_bytes: int) -> Result[DeviceTelemetry, str]:
    """Validate one telemetry message. Err carries a one-line reason naming the first
    offending field, e.g. ``readings.rh: Input should be a valid number``. Never raises
    for bad input."""
    if len(data) > max_bytes:
        return Err(f"{len(data)} bytes, more than {max_bytes}")
    try:
        return Ok(DeviceTelemetry.model_validate_json(data))
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        return Err(f"{where}: {first['msg']}{more}")


class TelemetryBridge(Actor):
    """Bridges device telemetry on ``options.filter`` of link ``options.link`` into
    ``gw.device.reading`` events (see :class:`BridgeOptions` for every option).

    Contract:

    * Each valid message becomes exactly one :class:`DeviceReading` through
      ``services.generate_event`` (durable, then uploaded); ``time_ns`` is the device's
      ``ts`` when it sent one.
    * A malformed message (topic without a device id, too large, not JSON, wrong shape,
      non-numeric or non-finite readings) is counted per device in ``stats.malformed``,
      reported as a warning (the proactor rate-limits reports with the same summary, so a
      burst is one report plus a count) and dropped; valid traffic keeps flowing. Bad
      input never raises; only a store that is not running does (``generate_event``'s
      StateError), which the proactor counts and reports as a handler failure.
    * The subscription is made in ``start`` (the link restores it after every reconnect).

    Raises ValueError (pydantic's ValidationError) from the constructor on bad options or
    a ``link`` the gateway does not have; ``load_actor`` turns that into a ConfigError.
    """

    payload_types: ClassVar[tuple[type[Payload], ...]] = (DeviceReading,)

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services, settings)
        self.options = BridgeOptions.model_validate(self.actor_settings.options)
        if self.options.link not in services.settings.links:
            raise ValueError(
                f"link {self.options.link!r} is not configured; "
                f"links: {sorted(services.settings.links)}"
            )
        self.stats = BridgeStats()

    def start(self) -> None:
        # Subscribing again (a restarted actor of this name) replaces the route: no
        # message is delivered twice.
        # Without a payload type: the topic carries the device id, and the proactor's typed
        # path would drop the topic and count errors per filter rather than per device.
        self.services.subscribe_raw(
            self.options.link, self.options.filter, self.name, qos=self.options.qos
        )

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        payload = message.payload
        if not isinstance(payload, RawMessage):
            return Err(TypeError(f"{self.name} bridges raw telemetry, got {message.message_type}"))
        self._bridge(payload)
        return Ok(None)

    def _bridge(self, raw: RawMessage) -> None:
        self.stats.received += 1
        device = device_of(raw.topic, self.options.device_level)
        if device is None:
            self._malformed(
                NO_DEVICE, raw.topic, f"no device id at level {self.options.device_level}"
            )
            return
        match parse_telemetry(raw.payload, self.options.max_payload_bytes):
            case Err(reason):
                self._malformed(device, raw.topic, reason)
            case Ok(telemetry):
                # Microsecond rounding: a float of seconds since the epoch has no more
                # precision than that, and round numbers compare cleanly downstream.
                time_ns = (
                    round(telemetry.ts * 1_000_000) * 1000
                    if telemetry.ts is not None
                    else time.time_ns()
                )
                event = DeviceReading(
                    device=device,
                    readings=dict(telemetry.readings),
                    topic=raw.topic,
                    time_ns=time_ns,
                )
                self.services.generate_event(event).add_done_callback(self._settled)

    def _settled(self, future: asyncio.Future[Result[str, StoreError]]) -> None:
        if future.cancelled():
            return
        error = future.exception()  # retrieved: no loop traceback for it
        if error is not None:
            # Not an Err the store answered (and reported) but a failure outright.
            self.stats.refused += 1
            self.services.report_problem(
                f"{self.name}: reading not stored",
                f"generate_event failed: {type(error).__name__}: {error}",
            )
        elif isinstance(future.result(), Ok):
            self.stats.stored += 1
        else:
            self.stats.refused += 1  # the store counted and reported it already

    def _malformed(self, device: str, topic: str, reason: str) -> None:
        counts = self.stats.malformed
        if device not in counts and len(counts) >= self.options.max_tracked_devices:
            device = OTHER_DEVICES
        counts[device] += 1
        self.log.debug("malformed telemetry on %s: %s", topic, reason)
        # One summary per bridge: a flood from many (possibly made-up) device ids is still
        # one report per interval; the counts say who.
        self.services.report_problem(
            f"{self.name}: malformed telemetry", f"{topic}: {reason}", error=False
        )
