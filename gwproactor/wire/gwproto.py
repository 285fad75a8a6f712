"""The gwproto wire format: the one deployed gridworks-proactor 4.x gateways speak.

Checked against gridworks-proactor 4.1.13 with gridworks-protocol 1.3.3:

* **Names.** A gateway has a long name (``hw1.isone.me.versant.keene.beech.scada``) and a
  short name (``s``). It publishes on ``gw/<own long name>/to/<peer short name>/<type>`` and
  subscribes to ``gw/<peer long name>/to/<own short name>/#``, every ``.`` written as ``-``.
  (4.x turns every ``-`` back into ``.`` on receipt, which is why names with ``-`` are
  refused on gwproto links.) This codec never inverts that mapping: it compares the topic's
  levels with the *escaped* names it expects and takes the true names and the type from the
  envelope, which must agree with the topic.
* **Envelope.** ``{"Header": {"Src", "Dst", "MessageType", "MessageId", "AckRequired",
  "TypeName": "gridworks.header", "Version": "001"}, "Payload": {..., "TypeName": <type>},
  "TypeName": "gw"}``; CamelCase payload fields. ``Dst`` is the receiver's short name.
* **Framework messages**, mapped to ours both ways: ``gridworks.ack`` (``AckMessageID``) is
  ``gw.ack``, ``gridworks.ping`` is ``gw.ping``, ``gridworks.event.problem`` (``ProblemType``,
  ``Summary``, ``Details``) is ``gw.problem``. Batched acks (``gw.acks``), presence, admin
  and other ``gw.*`` messages have no gwproto form and are never encoded.
* **Events.** ``gridworks.event.*`` payloads carry ``MessageId`` (the header's, our event
  id), ``TimeCreatedMs`` and ``Src``. Received events of every type keep their original
  payload JSON (:attr:`Message.payload_json`), so they are stored and forwarded unchanged;
  a registered model receives ``Src``/``TimeCreatedMs`` as ``src``/``time_ns`` and every
  other field by the gwproto name it declares. A 4.x parent decodes only
  ``gridworks.event.*`` events (:meth:`GwprotoCodec.can_carry_event`).

Decoding never raises for bad input: it returns ``Err(DecodeError)`` with a counted reason.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from result import Err, Ok, Result

from gwproactor.errors import DecodeError, EncodeError
from gwproactor.wire.codec import DEFAULT_MAX_PAYLOAD_BYTES, MessageRegistry
from gwproactor.wire.message import (
    MAX_ID_LENGTH,
    Ack,
    AnyEvent,
    Event,
    Header,
    Message,
    Payload,
    Ping,
    new_message_id,
)

__all__ = ("ENVELOPE_TYPE", "GwprotoCodec", "gwproto_escape")

ENVELOPE_TYPE = "gw"
HEADER_TYPE = "gridworks.header"
HEADER_VERSION = "001"
EVENT_PREFIX = "gridworks.event."
_PROBLEM = "gw.problem"
# Our framework types and their gwproto names.
_TO_WIRE = {
    Ack.type_name: "gridworks.ack",
    Ping.type_name: "gridworks.ping",
    _PROBLEM: "gridworks.event.problem",
}
_FROM_WIRE = {wire: ours for ours, wire in _TO_WIRE.items()}
# Our event fields and their gwproto names (ProblemEvent's too).
_EVENT_FIELDS = {"src": "Src", "problem_type": "ProblemType", "summary": "Summary"}
_EVENT_FIELDS["details"] = "Details"
_FROM_EVENT_FIELDS = {wire: ours for ours, wire in _EVENT_FIELDS.items()}
_NS_PER_MS = 1_000_000


def gwproto_escape(name: str) -> str:
    """A name as a gwproto topic level: every ``.`` written as ``-``."""
    return name.replace(".", "-")


def _wire_type(type_name: str) -> str:
    return _TO_WIRE.get(type_name, type_name)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class GwprotoCodec:
    """Encodes and decodes messages of one link to a gridworks-proactor 4.x gateway.

    ``gateway``/``short_name`` are our long and short names, ``peer``/``peer_short_name`` the
    peer's. Same interface as :class:`~gwproactor.wire.codec.JsonCodec`; loop-only.
    """

    max_ids_per_ack = 1  # 4.x knows only gridworks.ack: one id per ack

    def __init__(
        self,
        registry: MessageRegistry,
        *,
        gateway: str,
        short_name: str,
        peer: str,
        peer_short_name: str,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes
        self.gateway = gateway
        self.short_name = short_name
        self.peer = peer
        self.peer_short_name = peer_short_name
        self._topic_src = gwproto_escape(peer)
        self._topic_dst = gwproto_escape(short_name)

    def refresh(self) -> None:
        """Nothing cached per type here (the registry is read at each decode)."""

    # -- topics --------------------------------------------------------------------------

    def subscription(self, peer: str, gateway: str) -> str:
        """What to subscribe to: every message from the peer to our short name."""
        return f"{ENVELOPE_TYPE}/{self._topic_src}/to/{self._topic_dst}/#"

    def header_topic(self, header: Header) -> str:
        """``gw/<our long name>/to/<peer short name>/<type>``, dots written as dashes."""
        return gwproto_escape(
            f"{ENVELOPE_TYPE}/{header.src}/to/{self.peer_short_name}/"
            f"{_wire_type(header.message_type)}"
        )

    def can_carry_event(self, type_name: str) -> bool:
        """Whether a 4.x peer can decode (and so ack) an event of this type."""
        return _wire_type(type_name).startswith(EVENT_PREFIX) and "-" not in type_name

    # -- encode --------------------------------------------------------------------------

    def encode(self, message: Message[Any]) -> bytes:
        """The gwproto bytes of ``message``. Raises EncodeError for a type a 4.x peer cannot
        decode (``gw.acks``, admin and other ``gw.*`` types, events outside
        ``gridworks.event.*``, names with ``-``)."""
        header = message.header
        payload = message.payload
        try:
            fields = type(payload).__pydantic_serializer__.to_python(payload, mode="json")
        except Exception as e:  # pydantic raises PydanticSerializationError and friends
            raise EncodeError(f"cannot encode {header.message_type}: {e}") from e
        if isinstance(payload, Ack):
            fields = {"AckMessageID": payload.ack_message_id}
        elif isinstance(payload, Ping):
            fields = {"MessageId": header.message_id}
        return self._envelope(header, self._payload_fields(header, fields))

    def encode_new(
        self,
        src: str,
        dst: str,
        payload: Payload,
        *,
        message_id: str,
        ack_required: bool = False,
        actor: str = "",
    ) -> tuple[str, bytes]:
        """The topic and bytes of a new message (no fast path: 4.x links are not busy)."""
        message = Message.create(
            src, dst, payload, ack_required=ack_required, actor=actor, message_id=message_id
        )
        return self.header_topic(message.header), self.encode(message)

    def encode_with_payload_json(self, header: Header, payload_json: bytes) -> bytes:
        """Envelope bytes around a stored event's payload. A payload received from a 4.x
        gateway (it has a ``TypeName``) goes out as it came (byte for byte, or field for
        field if a native link relayed it); one of ours is translated."""
        try:
            fields = json.loads(payload_json)
        except ValueError as e:
            raise EncodeError(f"stored payload of {header.message_id} is not JSON") from e
        if isinstance(fields, dict) and "TypeName" in fields:
            self._check_type(header.message_type)
            if "src" in fields or "time_ns" in fields:
                # Relayed through a native link, which put our names in front: drop them.
                fields.pop("src", None)
                fields.pop("time_ns", None)
                return self._envelope_bytes(header, _dumps(fields))
            return self._envelope_bytes(header, payload_json)
        return self._envelope(header, self._payload_fields(header, fields))

    def _check_type(self, type_name: str) -> str:
        wire = _wire_type(type_name)
        if "-" in type_name or (wire.startswith("gw.") and wire not in _FROM_WIRE):
            raise EncodeError(f"a gridworks-proactor 4.x peer cannot decode {type_name!r}")
        return wire

    def _payload_fields(self, header: Header, fields: dict[str, Any]) -> dict[str, Any]:
        wire = self._check_type(header.message_type)
        if "time_ns" in fields or wire.startswith(EVENT_PREFIX):
            if not self.can_carry_event(header.message_type):
                raise EncodeError(
                    f"a gridworks-proactor 4.x peer decodes events of gridworks.event.* "
                    f"types only, not {header.message_type!r}"
                )
            out: dict[str, Any] = {"MessageId": header.message_id}
            time_ns = fields.pop("time_ns", None)
            if isinstance(time_ns, int):
                out["TimeCreatedMs"] = time_ns // _NS_PER_MS
            for key, value in fields.items():
                out[_EVENT_FIELDS.get(key, key)] = value
            if not out.get("Src"):
                out["Src"] = header.src
            fields = out
        fields["TypeName"] = wire
        return fields

    def _envelope(self, header: Header, payload: dict[str, Any]) -> bytes:
        try:
            return self._envelope_bytes(header, _dumps(payload))
        except (TypeError, ValueError) as e:
            raise EncodeError(f"cannot encode {header.message_type}: {e}") from e

    def _envelope_bytes(self, header: Header, payload_json: bytes) -> bytes:
        wire_header = {
            "Src": header.src,
            "Dst": self.peer_short_name,
            "MessageType": _wire_type(header.message_type),
            "MessageId": header.message_id,
            "AckRequired": header.ack_required,
            "TypeName": HEADER_TYPE,
            "Version": HEADER_VERSION,
        }
        return b"".join(
            (b'{"Header":', _dumps(wire_header), b',"Payload":', payload_json, b',"TypeName":"gw"}')
        )

    # -- decode --------------------------------------------------------------------------

    def decode_message(self, topic: str, payload: bytes) -> Message[Any] | DecodeError:
        """:meth:`decode` without the Result around it (what links call per message)."""
        result = self.decode(topic, payload)
        return result.err_value if isinstance(result, Err) else result.ok_value

    def decode(self, topic: str, payload: bytes) -> Result[Message[Any], DecodeError]:
        """Decode a message received on ``topic``. Never raises for bad input.

        Checks, in order: size; the topic's levels against the escaped names we expect
        (``topic``); JSON and the envelope's shape (``json``, ``envelope``); that header,
        payload and topic agree on source, destination and type (``mismatch``); a known
        type or any ``gridworks.event.*`` (``unknown_type``); the payload (``payload``).
        """
        if len(payload) > self.max_payload_bytes:
            return Err(
                DecodeError("too_large", f"{len(payload)} bytes > {self.max_payload_bytes}", topic)
            )
        levels = topic.split("/")
        if (
            len(levels) != 5
            or levels[0] != ENVELOPE_TYPE
            or levels[2] != "to"
            or levels[1] != self._topic_src
            or levels[3] != self._topic_dst
        ):
            return Err(
                DecodeError("topic", f"not gw/{self._topic_src}/to/{self._topic_dst}/<type>", topic)
            )
        try:
            envelope = json.loads(payload)
            # json accepts lone surrogate escapes ("\\ud800"), which no encoder (the store's,
            # an ack's) can write again; deep nesting raises RecursionError.
            _dumps(envelope)
        except (ValueError, RecursionError) as e:
            return Err(DecodeError("json", str(e), topic))
        parsed = _parse_envelope(envelope)
        if isinstance(parsed, str):
            return Err(DecodeError("envelope", parsed, topic))
        wire_header, fields = parsed
        wire_type = fields["TypeName"]
        src = wire_header["Src"]
        dst = wire_header.get("Dst", "")
        if (
            wire_header["MessageType"] != wire_type
            or gwproto_escape(wire_type) != levels[4]
            or src != self.peer
            or dst != self.short_name
        ):
            return Err(
                DecodeError(
                    "mismatch",
                    f"header says {src}->{dst} {wire_header['MessageType']}, payload {wire_type}",
                    topic,
                )
            )
        return self._message(topic, wire_header, fields)

    def _message(
        self, topic: str, wire_header: dict[str, Any], fields: dict[str, Any]
    ) -> Result[Message[Any], DecodeError]:
        wire_type: str = fields["TypeName"]
        type_name = _FROM_WIRE.get(wire_type, wire_type)
        message_id: str = wire_header.get("MessageId") or ""
        is_event = wire_type.startswith(EVENT_PREFIX)
        if is_event and not message_id:
            message_id = str(fields.get("MessageId") or "")
            if not message_id:
                return Err(DecodeError("envelope", "an event without MessageId", topic))
        if len(message_id) > MAX_ID_LENGTH:
            return Err(DecodeError("envelope", f"MessageId over {MAX_ID_LENGTH}", topic))
        # 4.x never acks a message without an id, and nor do we: there is nothing to ack by.
        ack_required = bool(wire_header.get("AckRequired")) and bool(message_id)
        header = Header.model_construct(
            src=self.peer,
            dst=self.gateway,
            message_type=type_name,
            message_id=message_id or new_message_id(),
            ack_required=ack_required,
            actor="",
        )
        payload_type = self.registry.get(type_name)
        try:
            if wire_type == "gridworks.ack":
                value: Any = Ack(ack_message_id=fields["AckMessageID"])
            elif wire_type == "gridworks.ping":
                value = Ping()
            elif is_event:
                value = _event(payload_type, fields)
            elif payload_type is None:
                return Err(DecodeError("unknown_type", wire_type, topic))
            else:
                value = payload_type.model_validate(fields)
        except DecodeError as e:
            return Err(DecodeError("payload", e.detail, topic))
        except (ValidationError, KeyError, TypeError, ValueError) as e:
            return Err(DecodeError("payload", str(e).splitlines()[0], topic))
        message = Message[Any].model_construct(header=header, payload=value)
        if is_event:
            message.keep_payload_json(_dumps(fields))
        return Ok(message)


def _parse_envelope(envelope: Any) -> tuple[dict[str, Any], dict[str, Any]] | str:  # noqa: PLR0911
    """The header and payload dicts, or what is wrong. ``Header.TypeName``, ``Version`` and
    the top-level ``TypeName`` may be missing; when present they must be gwproto's."""
    if not isinstance(envelope, dict):
        return "not a JSON object"
    if envelope.get("TypeName", ENVELOPE_TYPE) != ENVELOPE_TYPE:
        return f"envelope TypeName {envelope.get('TypeName')!r}"
    wire_header = envelope.get("Header")
    fields = envelope.get("Payload")
    if not isinstance(wire_header, dict) or not isinstance(fields, dict):
        return "no Header or Payload object"
    if wire_header.get("TypeName", HEADER_TYPE) != HEADER_TYPE:
        return f"header TypeName {wire_header.get('TypeName')!r}"
    for key in ("Src", "MessageType"):
        if not isinstance(wire_header.get(key), str):
            return f"Header.{key} missing"
    for key, kind in (("Dst", str), ("MessageId", str), ("AckRequired", bool)):
        if key in wire_header and not isinstance(wire_header[key], kind):
            return f"Header.{key} is not a {kind.__name__}"
    if not isinstance(fields.get("TypeName"), str) or not fields["TypeName"]:
        return "Payload.TypeName missing"
    return wire_header, fields


def _event(payload_type: type[Any] | None, fields: dict[str, Any]) -> Event:
    """The event as our model (registered type) or as :class:`AnyEvent` keeping every field."""
    time_ms = fields.get("TimeCreatedMs")
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise DecodeError("payload", "TimeCreatedMs is not an integer")
    src = fields.get("Src")
    if not isinstance(src, str):
        raise DecodeError("payload", "Src is not a string")
    ours: dict[str, Any] = {"time_ns": time_ms * _NS_PER_MS}
    for key, value in fields.items():
        if key not in ("TimeCreatedMs", "MessageId", "TypeName"):
            ours[_FROM_EVENT_FIELDS.get(key, key)] = value
    if payload_type is not None and issubclass(payload_type, Event):
        event: Event = payload_type.model_validate(ours)
        return event
    return AnyEvent.model_validate(ours)
