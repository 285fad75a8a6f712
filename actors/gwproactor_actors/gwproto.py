"""Payload models for links to gridworks-proactor 4.x gateways (``codec = "gwproto"``).

A model meant for a gwproto link declares gwproto's field names (CamelCase) and its type
name; the codec adds ``TypeName`` on the wire and, for events, maps ``Src`` and
``TimeCreatedMs`` to our ``src`` and ``time_ns`` and the header's id to ``MessageId``.
Register these with an actor's ``payload_types`` (or a :class:`MessageRegistry`) like any
other type.
"""

from __future__ import annotations

from typing import ClassVar

from gwproactor import Event, Payload

__all__ = ("PowerWatts", "SiteReading")


class PowerWatts(Payload):
    """gridworks-protocol's ``power.watts`` (version 000): real-time power in W, positive
    when drawn from the grid. A message, not an event."""

    type_name: ClassVar[str] = "power.watts"
    Watts: int
    Version: str = "000"


class SiteReading(Event):
    """An event a 4.x parent accepts (every ``gridworks.event.*`` type is stored, acked and
    forwarded there, known or not): one reading of a named channel."""

    type_name: ClassVar[str] = "gridworks.event.site.reading"
    Channel: str = ""
    Value: float = 0.0
    Seq: int = 0
