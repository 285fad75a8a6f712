"""Bad input: property-based fuzzing of the names, the topic parser and the codec, and a flood
of garbage on a real broker.

The properties run with a fixed, derandomized profile and no example database, so CI sees the
same examples every run and nothing is written into the tree.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from result import Err, Ok

from gwproactor import BrokerSettings, Proactor
from gwproactor.errors import DecodeError, InvalidNameError
from gwproactor.mqtt._paho import close_all
from gwproactor.wire.codec import JsonCodec
from gwproactor.wire.message import AnyEvent, Message
from gwproactor.wire.names import (
    MAX_NAME_LENGTH,
    is_valid_name,
    parse_topic,
    topic_for,
    validate_name,
)
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    Hello,
    Recorder,
    pair_settings,
    running,
    wait_active,
    wait_until,
)

if TYPE_CHECKING:
    from tests.support.fixtures import MosquittoFactory

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- an oracle for names, written from the documented rule (gwproactor/wire/names.py docstring) ----

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
ALPHABET = LETTERS + DIGITS + "._-"
NOT_ALLOWED = "/+#$ \t\n\x00é\u0660\uff21\u212a:*?"  # MQTT's specials, space, NUL, non-ASCII


def documented_rule(name: str) -> bool:
    """1 to 128 characters from A-Z a-z 0-9 . _ -; the first a letter or digit; not ending
    with '.'; no two dots in a row. Deliberately written without a regular expression."""
    return (
        1 <= len(name) <= 128
        and all(c in ALPHABET for c in name)
        and name[0] in LETTERS + DIGITS
        and not name.endswith(".")
        and ".." not in name
    )


def _make_name(first: str, rest: str) -> str:
    name = first + rest
    while ".." in name:
        name = name.replace("..", "._")
    return name.rstrip(".")


valid_names = st.builds(
    _make_name,
    st.sampled_from(LETTERS + DIGITS),
    st.text(alphabet=ALPHABET, max_size=MAX_NAME_LENGTH - 1),
)
"""Every name this generates is allowed (lengths up to the limit, dots never doubled)."""

name_like_text = (
    st.text(alphabet=st.sampled_from(ALPHABET + NOT_ALLOWED), max_size=12)
    | st.text(alphabet=st.sampled_from(ALPHABET), min_size=120, max_size=135)
    | st.text(max_size=20)
    | valid_names
)
"""Text near the rule's edges: the allowed alphabet with intruders, lengths around 128."""

KNOWN_TYPES = ("test.hello", "test.reply", "test.counted", "gw.ack", "gw.ping")
KNOWN_REASONS = frozenset(
    {"json", "envelope", "unknown_type", "payload", "topic", "mismatch", "too_large"}
)
MAX_PAYLOAD = 2048


# -- names ----------------------------------------------------------------------------------


@FUZZ
@given(name_like_text)
def test_validate_name_accepts_exactly_the_documented_rule(name: str) -> None:
    expected = documented_rule(name)
    assert is_valid_name(name) is expected
    if expected:
        assert validate_name(name) == name
    else:
        with pytest.raises(InvalidNameError, match="invalid"):
            validate_name(name)


@FUZZ
@given(valid_names)
def test_generated_names_are_valid(name: str) -> None:
    assert documented_rule(name)
    assert is_valid_name(name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a" * 128, True),
        ("a" * 129, False),
        ("a" * 127 + ".", False),
        ("a" * 126 + ".b", True),
        ("9", True),
        ("_a", False),
        ("-a", False),
        ("a.-b", True),
        ("a-", True),
        ("a\n", False),
        ("\u0661", False),  # an Arabic-Indic digit is a digit, but not an ASCII one
    ],
)
def test_name_rule_edges(name: str, valid: bool) -> None:
    assert documented_rule(name) is valid
    assert is_valid_name(name) is valid


# -- topics ---------------------------------------------------------------------------------


@FUZZ
@given(valid_names, valid_names, valid_names)
def test_parse_topic_inverts_topic_for(src: str, dst: str, message_type: str) -> None:
    assert parse_topic(topic_for(src, dst, message_type)) == (src, dst, message_type)


topics = (
    st.text(max_size=80)
    | st.lists(name_like_text, min_size=0, max_size=7).map("/".join)
    | st.builds(topic_for, name_like_text, name_like_text, name_like_text)
)


@FUZZ
@given(topics)
def test_parse_topic_never_raises_and_accepts_only_gateway_topics(topic: str) -> None:
    parts = parse_topic(topic)
    if parts is not None:
        assert all(documented_rule(name) for name in parts)
        assert topic_for(*parts) == topic
    else:
        levels = topic.split("/")
        assert not (
            len(levels) == 5
            and levels[0] == "gw"
            and levels[2] == "to"
            and all(documented_rule(levels[i]) for i in (1, 3, 4))
        )


# -- the codec ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def _right_payload(message_type: str) -> st.SearchStrategy[Any]:
    """A payload that fits ``message_type`` (an event-shaped one for an unknown type)."""
    event = {"src": st.text(max_size=8), "time_ns": st.integers(min_value=0)}
    shapes: dict[str, st.SearchStrategy[Any]] = {
        "test.hello": st.fixed_dictionaries({"n": st.integers()}, optional={"text": st.text()}),
        "test.reply": st.fixed_dictionaries({"n": st.integers()}),
        "test.counted": st.fixed_dictionaries({"n": st.integers()}, optional=event),
        "gw.ack": st.fixed_dictionaries({"ack_message_id": st.text(max_size=10)}),
        "gw.ping": st.just({}),
    }
    extra = st.dictionaries(st.sampled_from(["x", "y"]), json_values, max_size=2)
    shape = shapes.get(message_type, st.fixed_dictionaries(event))
    return st.builds(lambda d, e: {**e, **d}, shape, extra)


FLAWS = ("none", "other_name", "wrong_value", "missing_field", "extra_field", "not_an_object")


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[str, bytes]:
    """A gateway topic and a JSON document shaped more or less like its envelope: right,
    or with one flaw in the header, a payload of the wrong shape, a wrong wrapping, or cut
    short."""
    src, dst = draw(valid_names), draw(valid_names)
    message_type = draw(st.sampled_from((*KNOWN_TYPES, "some.new.event")))
    header: Any = {
        "src": src,
        "dst": dst,
        "message_type": message_type,
        "message_id": draw(st.text(max_size=10)),
    }
    if draw(st.booleans()):
        header["ack_required"] = draw(st.booleans())
    if draw(st.booleans()):
        header["actor"] = draw(st.text(max_size=10))
    key = draw(st.sampled_from(sorted(header)))
    match draw(st.sampled_from(FLAWS)):
        case "other_name":  # well-formed, but not what the topic says
            which = draw(st.sampled_from(["src", "dst", "message_type"]))
            header[which] = draw(
                st.sampled_from([*KNOWN_TYPES, "x", "zz"]).filter(
                    lambda name: name != header[which]
                )
            )
        case "wrong_value":
            header[key] = draw(json_values | name_like_text)
        case "missing_field":
            del header[key]
        case "extra_field":
            header[draw(st.text(max_size=8))] = draw(json_values)
        case "not_an_object":
            header = draw(json_values)
    payload = draw(_right_payload(message_type) | json_values)
    document: Any = {"header": header, "payload": payload}
    if draw(st.integers(0, 4)) == 0:
        document = draw(st.sampled_from([[document], {"header": document}, header, payload]))
    raw = json.dumps(document).encode()
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=4))
    return topic_for(src, dst, message_type), raw


def _check_decoded(codec: JsonCodec, topic: str, payload: bytes) -> str:
    """Decode and check the contract; return "ok" or the error's reason."""
    result = codec.decode(topic, payload)
    match result:
        case Ok(message):
            assert isinstance(message, Message)
            parts = parse_topic(topic)
            assert parts is not None
            assert (message.src, message.dst, message.message_type) == parts
            payload_type = REGISTRY.get(message.message_type)
            if payload_type is None:
                assert isinstance(message.payload, AnyEvent)
            else:
                assert isinstance(message.payload, payload_type)
            return "ok"
        case Err(error):
            assert isinstance(error, DecodeError)
            assert error.reason in KNOWN_REASONS, error
            if len(payload) > MAX_PAYLOAD:
                assert error.reason == "too_large"
            return error.reason
    raise AssertionError(f"not a Result: {result!r}")


@pytest.fixture(scope="module")
def codec() -> JsonCodec:
    return JsonCodec(REGISTRY, max_payload_bytes=MAX_PAYLOAD)


@FUZZ
@given(topic=topics, payload=st.binary(max_size=MAX_PAYLOAD + 64))
def test_decode_arbitrary_bytes_on_arbitrary_topics(
    codec: JsonCodec, topic: str, payload: bytes
) -> None:
    _check_decoded(codec, topic, payload)


def test_decode_structured_but_wrong_envelopes(codec: JsonCodec) -> None:
    seen: Counter[str] = Counter()

    @FUZZ
    @given(envelopes())
    def check(item: tuple[str, bytes]) -> None:
        seen[_check_decoded(codec, *item)] += 1

    check()
    # The generator reaches every outcome (so the property above is not vacuous).
    assert {"ok", "json", "payload", "unknown_type", "mismatch"} <= set(seen), seen


@FUZZ
@given(topic=topics, head=st.binary(max_size=64), excess=st.integers(1, 4096))
def test_payloads_over_the_limit_are_too_large(
    codec: JsonCodec, topic: str, head: bytes, excess: int
) -> None:
    payload = head + b"{" * (MAX_PAYLOAD + excess - len(head))
    result = codec.decode(topic, payload)
    assert isinstance(result, Err)
    assert result.err_value.reason == "too_large"


big_text = st.builds(lambda c, k: c * k, st.characters(), st.integers(1500, 2500))


@FUZZ
@given(src=valid_names, dst=valid_names, n=st.integers(), text=st.text(max_size=40) | big_text)
def test_valid_messages_round_trip_unless_over_the_limit(
    codec: JsonCodec, src: str, dst: str, n: int, text: str
) -> None:
    message = Message.create(src, dst, Hello(n=n, text=text), ack_required=True, actor="rx")
    payload = codec.encode(message)
    result = codec.decode(codec.topic(message), payload)
    if len(payload) > MAX_PAYLOAD:
        assert isinstance(result, Err)
        assert result.err_value.reason == "too_large"
    else:
        assert isinstance(result, Ok)
        assert result.ok_value.header == message.header
        assert result.ok_value.payload == message.payload


def test_a_message_of_exactly_the_limit_is_accepted(codec: JsonCodec) -> None:
    message = Message.create("a", "b", Hello(n=1, text=""), message_id="id")
    filler = MAX_PAYLOAD - len(codec.encode(message))
    payload = codec.encode(Message.create("a", "b", Hello(n=1, text="x" * filler), message_id="id"))
    assert len(payload) == MAX_PAYLOAD
    assert isinstance(codec.decode("gw/a/to/b/test.hello", payload), Ok)
    assert isinstance(codec.decode("gw/a/to/b/test.hello", payload + b" "), Err)


def test_a_malformed_header_is_an_envelope_error(codec: JsonCodec) -> None:
    payload = b'{"header":{"src":"a","dst":"b"},"payload":{"n":1}}'
    result = codec.decode("gw/a/to/b/test.hello", payload)
    assert isinstance(result, Err)
    assert result.err_value.reason == "envelope"


@pytest.mark.parametrize(
    "header",
    [
        {"message_id": "x" * 129},
        {"message_id": ""},
        {"message_id": "m1", "actor": "a" * 129},
    ],
)
def test_ids_over_the_bound_are_envelope_errors(codec: JsonCodec, header: dict[str, str]) -> None:
    """A peer cannot make a receiver remember (de-duplication) or store (event ids)
    arbitrarily long ids."""
    base = {"src": "a", "dst": "b", "message_type": "test.hello"}
    envelope = {"header": base | header, "payload": {"n": 1}}
    result = codec.decode("gw/a/to/b/test.hello", json.dumps(envelope).encode())
    assert isinstance(result, Err)
    assert result.err_value.reason == "envelope"
    ok = {"header": base | {"message_id": "m" * 128}, "payload": {"n": 1}}
    assert isinstance(codec.decode("gw/a/to/b/test.hello", json.dumps(ok).encode()), Ok)


# -- a garbage flood through a real broker --------------------------------------------------

GARBAGE_PER_KIND = 1500
FLOOD_LINK_MAX_PAYLOAD = 1024


def _garbage(rng: random.Random) -> tuple[list[tuple[str, bytes]], Counter[str]]:
    """Garbage of seven kinds on the child's subscription, interleaved, and the decode-error
    reason each kind must be counted under."""
    wrong_src = json.dumps(
        {
            "header": {
                "src": "intruder",
                "dst": "child",
                "message_type": "test.hello",
                "message_id": "forged",
            },
            "payload": {"n": -1},
        }
    ).encode()
    kinds: list[tuple[str, Callable[[int], tuple[str, bytes]]]] = [
        ("json", lambda i: ("gw/parent/to/child/test.hello", b"\xff" + rng.randbytes(i % 64))),
        ("envelope", lambda i: ("gw/parent/to/child/test.hello", b'{"header":{},"payload":[]}')),
        ("unknown_type", lambda i: (f"gw/parent/to/child/no.such.t{i % 7}", b'{"a":1}')),
        ("mismatch", lambda i: ("gw/parent/to/child/test.hello", wrong_src)),
        ("too_large", lambda i: ("gw/parent/to/child/test.hello", b"[" * 4000)),
        ("topic", lambda i: (f"gw/parent/to/child/a/b{i % 3}", b"{}")),
        ("presence", lambda i: ("gw/parent/status", b"\x00garbage")),
    ]
    items: list[tuple[str, bytes]] = []
    expected: Counter[str] = Counter()
    for i in range(GARBAGE_PER_KIND):
        for reason, make in kinds:
            items.append(make(i))
            expected[reason] += 1
    return items, expected


def _vandal(port: int, items: list[tuple[str, bytes]]) -> None:
    """Publish ``items`` at QoS 1 with a plain paho client and wait for every PUBACK.

    One thread drives the client (no ``loop_start``): paho then writes each PUBLISH at once,
    several times faster than with its network thread contending for the same locks."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="vandal")
    client.max_inflight_messages_set(0)  # no limit: everything goes out at once
    client.max_queued_messages_set(0)
    acked = 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    try:
        for topic, payload in items:
            client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + TIMEOUT * 3
        while acked < len(items):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {acked} of {len(items)} PUBACKs")
            client.loop(0.1)
    finally:
        client.disconnect()
        close_all(client)  # what close_client does, without a network thread


@pytest.mark.broker
async def test_garbage_flood_is_counted_rate_limited_and_valid_traffic_flows(
    mosquitto_factory: MosquittoFactory,
) -> None:
    # Room for the whole flood at the broker: its default (1000 queued per client) would drop
    # messages while the child is busy, and the counts below would not be exact.
    broker = mosquitto_factory(max_queued_messages=100_000, log_types=("error", "warning"))
    parent_settings, child_settings = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5),
        max_payload_bytes=FLOOD_LINK_MAX_PAYLOAD,
    )
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    garbage, expected = _garbage(random.Random(6))
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with (
            child.listener("problem", history=100_000) as problems,
            child.listener("link.state") as states,
            child.listener("message.dispatched") as heard,
        ):
            flood = asyncio.create_task(asyncio.to_thread(_vandal, broker.port, garbage))
            sent = 0
            while not flood.done():  # valid traffic alongside the garbage
                assert parent.send_to_peer("child", Hello(n=sent), actor="rx").is_ok()
                sent += 1
                await asyncio.wait({flood}, timeout=0.01)
            await flood
            # The last valid message follows every garbage message on the child's one TCP
            # stream (the vandal had all its PUBACKs before it was sent).
            assert parent.send_to_peer("child", Hello(n=sent), actor="rx").is_ok()
            sent += 1
            await wait_until(lambda: len(rx.received) == sent, heard, TIMEOUT * 3)
        stats = child.stats.link("parent")
        assert dict(stats.decode_errors) == dict(expected)
        assert stats.decode_errors_total == sum(expected.values()) >= 10_000
        assert [m.payload.n for m in rx.received] == list(range(sent))
        assert child.link("parent").active
        assert list(states.history) == []  # the link never left active
        assert child.state == "running"
        # Reported, but rate-limited per reason: a handful of problem events, not thousands.
        reported = Counter(e.source for e in problems.history)
        assert 0 < len(problems.history) <= 2 * len(expected), reported
        assert child.stats.problems_reported >= sum(expected.values()) - expected["presence"]
        assert stats.rejected_src == 0
        assert child.stats.dispatched == sent
    # Silence of the events channel: garbage was never stored as an event.
    assert child.stats.events_received == 0
    assert Counted.type_name not in stats.messages_in
