"""Sending from an actor: the codec writes the envelope's bytes directly (no Header or
Message built only to be serialised), byte for byte what the general path writes, in a
fraction of its bytecode."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gwproactor import BrokerSettings, Proactor
from gwproactor.wire.codec import JsonCodec
from gwproactor.wire.message import Message
from tests.helpers import REGISTRY, Hello, count_opcodes, pair_settings


@settings(max_examples=200, deadline=None)
@given(
    message_id=st.text(min_size=1, max_size=40),
    actor=st.text(max_size=20),
    ack_required=st.booleans(),
    text=st.text(max_size=30),
)
def test_encode_new_writes_what_encode_writes(
    message_id: str, actor: str, ack_required: bool, text: str
) -> None:
    codec = JsonCodec(REGISTRY)
    payload = Hello(n=7, text=text)
    message = Message.create(
        "parent", "child", payload, message_id=message_id, ack_required=ack_required, actor=actor
    )
    assert codec.encode_new(
        "parent", "child", payload, message_id=message_id, ack_required=ack_required, actor=actor
    ) == (codec.topic(message), codec.encode(message))


class _Transport:
    """Takes every publish (what is measured is the link's and the codec's work)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: Any, retain: bool = False) -> bool:
        self.published.append((topic, payload))
        return True

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_send_is_a_fraction_of_building_and_encoding_a_message() -> None:
    transport = _Transport()
    parent, _ = pair_settings(BrokerSettings())
    proactor = Proactor(parent, REGISTRY, transport_factory=lambda link, listener: transport)
    link = proactor.link("child")
    payload = Hello(n=1, text="hi")
    assert link.send(payload).is_ok()  # first-call costs out of the count
    assert link.publish(link.message(payload)).is_ok()
    assert link.stats.messages_out[Hello.type_name] == 2
    (topic, fast), (general_topic, general) = transport.published
    assert topic == general_topic == "gw/parent/to/child/test.hello"
    sent = [link.codec.decode(topic, data).unwrap() for data in (fast, general)]
    assert sent[0].payload == sent[1].payload == payload
    assert sent[0].header.model_copy(update={"message_id": "x"}) == sent[1].header.model_copy(
        update={"message_id": "x"}
    )
    assert sent[0].message_id != sent[1].message_id
    direct = count_opcodes(lambda: link.send(payload))
    built = count_opcodes(lambda: link.publish(link.message(payload)))
    # Message.create is cheap too (no pydantic constructor: ~110 opcodes); before either
    # change the built path took ~730 opcodes and send did not exist.
    assert direct <= 0.8 * built, (direct, built)
