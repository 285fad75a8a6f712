"""The gwproto codec and its settings, without a broker (fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gwproactor_actors.gwproto import PowerWatts, SiteReading
from result import Err, Ok

from gwproactor import LinkSettings, Message, Proactor, ProactorSettings
from gwproactor.config import load_settings
from gwproactor.errors import ConfigError, EncodeError, UnsendableEventError
from gwproactor.mqtt import MemoryBroker
from gwproactor.observe.problems import ProblemEvent
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.gwproto import GwprotoCodec
from gwproactor.wire.message import Ack, Acks, Ping
from tests.helpers import Counted, memory_factory

SCADA = "hw1.isone.me.versant.keene.beech.scada"
ATN = "hw1.isone.me.versant.keene.beech"
EVENT_TOPIC = "gw/hw1-isone-me-versant-keene-beech-scada/to/a/gridworks-event-site-reading"


def registry() -> MessageRegistry:
    return MessageRegistry(PowerWatts, SiteReading, ProblemEvent)


def parent_codec() -> GwprotoCodec:
    """Our ATN's codec on its link to a 4.x SCADA."""
    return GwprotoCodec(registry(), gateway=ATN, short_name="a", peer=SCADA, peer_short_name="s")


def child_codec() -> GwprotoCodec:
    return GwprotoCodec(registry(), gateway=SCADA, short_name="s", peer=ATN, peer_short_name="a")


def envelope(payload: dict[str, Any], **header: Any) -> dict[str, Any]:
    """What 4.1.13 sends (``Message.model_dump_json``)."""
    return {
        "Header": {
            "Src": SCADA, "Dst": "a", "MessageType": payload["TypeName"],
            "MessageId": payload.get("MessageId", ""), "AckRequired": True,
            "TypeName": "gridworks.header", "Version": "001", **header,
        },
        "Payload": payload,
        "TypeName": "gw",
    }  # fmt: skip


def reading(**extra: Any) -> dict[str, Any]:
    return {
        "MessageId": "1e1c7a37-5b6f-4a8e-9c43-1b7d6a4f2b10",
        "TimeCreatedMs": 1_700_000_000_123,
        "Src": SCADA,
        "TypeName": "gridworks.event.site.reading",
        **extra,
    }


def decode(data: dict[str, Any], topic: str = EVENT_TOPIC) -> Any:
    return parent_codec().decode(topic, json.dumps(data).encode())


# -- topics and envelope ----------------------------------------------------------------------


def test_topics_write_dots_as_dashes_and_subscribe_to_the_peer() -> None:
    codec = child_codec()
    message = Message.create(SCADA, ATN, SiteReading(src=SCADA, Seq=1), ack_required=True)
    assert codec.header_topic(message.header) == (
        "gw/hw1-isone-me-versant-keene-beech-scada/to/a/gridworks-event-site-reading"
    )
    assert codec.subscription(ATN, SCADA) == "gw/hw1-isone-me-versant-keene-beech/to/s/#"
    ack = Message.create(SCADA, ATN, Ack(ack_message_id="x"))
    assert codec.header_topic(ack.header).endswith("/to/a/gridworks-ack")


def test_event_round_trip_keeps_the_original_payload_and_names() -> None:
    payload = reading(Channel="t1", Value=2.5, Seq=7, Unknown={"Deep": [1, None]})
    result = decode(envelope(payload))
    assert isinstance(result, Ok)
    message = result.ok_value
    assert message.header.src == SCADA and message.header.dst == ATN
    assert message.header.message_type == "gridworks.event.site.reading"
    assert message.header.message_id == payload["MessageId"]
    assert message.payload == SiteReading(
        src=SCADA, time_ns=1_700_000_000_123_000_000, Channel="t1", Value=2.5, Seq=7
    )
    assert json.loads(message.payload_json) == payload  # unknown fields too, for forwarding
    # Stored and sent upstream on another gwproto link: the payload goes out unchanged.
    up = GwprotoCodec(registry(), gateway=ATN, short_name="a", peer="hw1.top", peer_short_name="p")
    header = message.header.model_copy(update={"src": ATN, "dst": "hw1.top"})  # as uploaded
    assert message.payload_json is not None
    out = json.loads(up.encode_with_payload_json(header, message.payload_json))
    assert out["Payload"] == payload
    assert out["Header"]["Src"] == ATN and out["Header"]["Dst"] == "p"


def test_decoding_tolerates_missing_header_type_version_and_envelope_type() -> None:
    data = envelope(reading(Seq=1))
    del data["Header"]["TypeName"], data["Header"]["Version"], data["TypeName"]
    assert isinstance(decode(data), Ok)


@pytest.mark.parametrize(
    ("change", "topic", "reason"),
    [
        ({"Src": ATN}, EVENT_TOPIC, "mismatch"),  # header source is not the peer
        ({"Dst": "b"}, EVENT_TOPIC, "mismatch"),  # not to our short name
        ({"MessageType": "gridworks.event.other"}, EVENT_TOPIC, "mismatch"),
        ({}, EVENT_TOPIC.replace("site-reading", "other"), "mismatch"),  # type in topic
        ({}, EVENT_TOPIC.replace("beech-scada", "beech-other"), "topic"),  # wrong source level
        ({}, EVENT_TOPIC.replace("/to/a/", "/to/b/"), "topic"),  # not for us
        ({}, EVENT_TOPIC.replace("beech-scada", "beech.scada"), "topic"),  # never inverted
        ({"TypeName": "gridworks.other"}, EVENT_TOPIC, "envelope"),
        ({"AckRequired": "yes"}, EVENT_TOPIC, "envelope"),
    ],
)
def test_header_and_topic_must_agree(change: dict[str, Any], topic: str, reason: str) -> None:
    result = decode(envelope(reading(), **change), topic)
    assert isinstance(result, Err)
    assert result.err_value.reason == reason


def test_bad_payloads_are_counted_reasons() -> None:
    codec = parent_codec()
    assert codec.decode(EVENT_TOPIC, b"{nope").err_value.reason == "json"  # type: ignore[union-attr]
    unknown = envelope({"TypeName": "some.thing", "X": 1}, MessageType="some.thing")
    result = codec.decode(EVENT_TOPIC.replace("gridworks-event-site-reading", "some-thing"),
                          json.dumps(unknown).encode())  # fmt: skip
    assert result.err_value.reason == "unknown_type"  # type: ignore[union-attr]
    no_time = reading()
    del no_time["TimeCreatedMs"]
    assert decode(envelope(no_time)).err_value.reason == "payload"


def test_framework_messages_map_both_ways() -> None:
    codec = parent_codec()
    ack_topic = "gw/hw1-isone-me-versant-keene-beech-scada/to/a/gridworks-ack"
    ack = envelope({"AckMessageID": "m1", "TypeName": "gridworks.ack"}, AckRequired=False)
    result = codec.decode(ack_topic, json.dumps(ack).encode())
    assert isinstance(result, Ok)
    assert result.ok_value.payload == Ack(ack_message_id="m1")
    assert not result.ok_value.header.ack_required and result.ok_value.header.message_id
    ping_topic = ack_topic.replace("gridworks-ack", "gridworks-ping")
    ping = envelope({"MessageId": "p1", "TypeName": "gridworks.ping"})
    result = codec.decode(ping_topic, json.dumps(ping).encode())
    assert isinstance(result, Ok)
    assert result.ok_value.header.message_type == "gw.ping"
    assert result.ok_value.header.message_id == "p1" and result.ok_value.header.ack_required
    # Ours out: the ack names the id; the ping carries its MessageId; the problem is 4.x's.
    out = json.loads(codec.encode(Message.create(ATN, SCADA, Ack(ack_message_id="p1"))))
    assert out["Payload"] == {"AckMessageID": "p1", "TypeName": "gridworks.ack"}
    assert out["Header"]["MessageType"] == "gridworks.ack" and out["Header"]["Dst"] == "s"
    ping_out = Message.create(ATN, SCADA, Ping(), ack_required=True)
    out = json.loads(codec.encode(ping_out))
    assert out["Payload"] == {"MessageId": ping_out.header.message_id, "TypeName": "gridworks.ping"}
    assert out["Header"]["MessageId"] == ping_out.header.message_id
    problem = ProblemEvent(src=ATN, time_ns=5_000_000, problem_type="error", summary="s")
    out = json.loads(codec.encode(Message.create(ATN, SCADA, problem, ack_required=True)))
    assert out["Payload"]["TypeName"] == "gridworks.event.problem"
    assert out["Payload"]["ProblemType"] == "error" and out["Payload"]["Summary"] == "s"
    assert out["Payload"]["TimeCreatedMs"] == 5 and out["Payload"]["Src"] == ATN


def test_a_message_without_id_is_not_acked() -> None:
    watts_topic = "gw/hw1-isone-me-versant-keene-beech-scada/to/a/power-watts"
    data = envelope({"Watts": 3, "TypeName": "power.watts", "Version": "000"})
    result = parent_codec().decode(watts_topic, json.dumps(data).encode())
    assert isinstance(result, Ok)
    assert result.ok_value.payload == PowerWatts(Watts=3)
    assert not result.ok_value.header.ack_required  # nothing to ack by (4.x does the same)


@pytest.mark.parametrize(
    "payload",
    [Acks(ids=["a", "b"]), Counted(n=1)],
    ids=["batched-acks", "event-outside-gridworks.event"],
)
def test_types_a_4x_peer_cannot_decode_are_never_encoded(payload: Any) -> None:
    with pytest.raises(EncodeError):
        child_codec().encode(Message.create(SCADA, ATN, payload, ack_required=True))
    assert not child_codec().can_carry_event("test.counted")
    assert child_codec().can_carry_event("gw.problem")
    assert child_codec().can_carry_event("gridworks.event.anything")


# -- settings -----------------------------------------------------------------------------


def gwproto_toml(tmp_path: Path, link: str, name: str = ATN) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(f'name = "{name}"\n[links.scada]\ncodec = "gwproto"\n{link}\n')
    return path


GOOD = f'peer = "{SCADA}"\nrole = "downstream"\nshort_name = "a"\npeer_short_name = "s"'


def test_gwproto_link_defaults() -> None:
    link = LinkSettings(codec="gwproto", peer=SCADA, short_name="a", peer_short_name="s")
    assert link.qos == 0 and not link.presence and not link.uses_presence
    assert link.broker.clean_session and link.ack_timeout_seconds == 5.0


@pytest.mark.parametrize(
    ("link", "name", "expected"),
    [
        (f'peer = "{SCADA}"\nrole = "downstream"', ATN, "needs short_name and peer_short_name"),
        (GOOD.replace('"a"', '"a-1"'), ATN, "short_name 'a-1' contains '-'"),
        (GOOD.replace(SCADA, "hw1.site-3.scada"), ATN, "peer 'hw1.site-3.scada' contains '-'"),
        (GOOD, "hw1.site-3", "name 'hw1.site-3' contains '-'"),
        (GOOD + "\npresence = true", ATN, "presence"),
        (GOOD + '\nbroker.topic_dot_escape = "~"', ATN, "topic_dot_escape does not apply"),
        (GOOD.replace("downstream", "admin"), ATN, "cannot have role 'admin'"),
    ],
)
def test_gwproto_config_errors_are_clear(
    tmp_path: Path, link: str, name: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(gwproto_toml(tmp_path, link, name), env_file=None, environ={})
    assert expected in str(info.value)


def test_short_names_are_for_gwproto_links_only() -> None:
    with pytest.raises(ValueError, match="for codec = 'gwproto' links"):
        LinkSettings(peer=SCADA, short_name="a")


@pytest.mark.parametrize("escape", ["-", "_", ".", "a", "7", "/", "#", "+", "$", " ", "é"])
def test_topic_dot_escape_outside_names_and_mqtt_specials(escape: str) -> None:
    with pytest.raises(ValueError, match=r"cannot stand for '\.'"):
        LinkSettings(peer="p", broker={"topic_dot_escape": escape})
    assert LinkSettings(peer="p", broker={"topic_dot_escape": "~"}).broker.topic_dot_escape == "~"


def test_shared_raw_filters_that_overlap_gw_are_refused() -> None:
    settings = ProactorSettings(name="g", links={"up": LinkSettings(peer="p")})
    link = Proactor(settings, transport_factory=memory_factory(MemoryBroker())).link("up")
    for bad in ("$share/grp/gw/#", "$share/grp/+/x/to/y/z", "$share/grp/#", "gw/x", "#"):
        with pytest.raises(ValueError, match="overlaps the gw/ topics"):
            link.subscribe_raw(bad)
    link.subscribe_raw("$share/grp/devices/#")  # shared, outside gw/: fine


async def test_events_a_4x_parent_cannot_decode_are_refused_at_generate() -> None:
    link = LinkSettings(
        codec="gwproto", peer=ATN, role="upstream", short_name="s", peer_short_name="a"
    )
    settings = ProactorSettings(name=SCADA, links={"atn": link})
    reg = registry()
    reg.register(Counted)
    gateway = Proactor(settings, reg, transport_factory=memory_factory(MemoryBroker()))
    await gateway.start()
    try:
        refused = await gateway.generate_event(Counted(n=1))
        assert isinstance(refused, Err) and isinstance(refused.err_value, UnsendableEventError)
        assert gateway.stats.events_rejected == 1
        assert isinstance(await gateway.generate_event(SiteReading(Seq=1)), Ok)
    finally:
        await gateway.stop_and_join()


def test_the_readme_examples_load(tmp_path: Path) -> None:
    """Both config examples of the README's gwproto section are valid as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Mixing with gridworks-proactor 4.x gateways", 1)[1].split("\n## ")[0]
    examples = [block.split("```", 1)[0] for block in section.split("```toml\n")[1:]]
    assert len(examples) == 2
    roles = set()
    for n, text in enumerate(examples):
        path = tmp_path / f"example{n}.toml"
        path.write_text(text)
        settings = load_settings(path, env_file=None, environ={})
        (link,) = settings.links.values()
        assert link.codec == "gwproto" and link.qos == 0 and not link.presence
        roles.add(link.role)
    assert roles == {"upstream", "downstream"}


def test_json_that_parses_but_cannot_be_handled_is_a_json_error() -> None:
    """Python's json accepts a lone surrogate escape (which can never be encoded again, for
    the store or an ack) and raises RecursionError on deep nesting: both are bad input."""
    surrogate = json.dumps(envelope(reading(Note="\ud800"))).encode()
    assert b"\\ud800" in surrogate
    assert parent_codec().decode(EVENT_TOPIC, surrogate).err_value.reason == "json"  # type: ignore[union-attr]
    deep = json.dumps(envelope(reading(Deep=0))).encode()
    deep = deep.replace(b'"Deep": 0', b'"Deep": ' + b"[" * 100_000 + b"]" * 100_000)
    assert len(deep) < 256 * 1024  # under the size limit: the parser sees it
    assert parent_codec().decode(EVENT_TOPIC, deep).err_value.reason == "json"  # type: ignore[union-attr]
