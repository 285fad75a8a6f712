"""Security: client certificates and a broker ACL confine each gateway to its own topics; a
message whose source is not the link's peer is rejected and counted; secrets stay out of
logs, status and command output. (The web server's side is tested with the web.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings, TlsSettings
from gwproactor.config import PathSettings, load_settings
from gwproactor.errors import ConfigError
from gwproactor.wire.codec import JsonCodec
from gwproactor.wire.message import Message
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Recorder,
    is_state,
    running,
    wait_active,
    wait_until,
)
from tests.support.paho import close_client

if TYPE_CHECKING:
    from gwproactor.testing.certs import TlsMaterial
    from gwproactor.testing.mosquitto import Mosquitto
    from tests.support.fixtures import MosquittoFactory

# The parent gateway holds the certificate "gateway", the child is "scada"; the ACL lets each
# identity write only below its own name and read only what is addressed to it.
ACL = """
user gateway
topic write gw/parent/#
topic read gw/+/to/parent/#
topic read gw/+/status

user scada
topic write gw/scada/#
topic read gw/+/to/scada/#
topic read gw/+/status

user intruder
topic write gw/intruder/#
topic read gw/intruder/#
"""


def _tls(material: TlsMaterial, identity: str, port: int) -> BrokerSettings:
    cert = material.client(identity)
    return BrokerSettings(
        port=port,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.5,
        tls=TlsSettings(
            enabled=True, ca_certs=material.ca_cert, certfile=cert.cert, keyfile=cert.key
        ),
    )


def _tls_client(material: TlsMaterial, identity: str, port: int, client_id: str) -> Client:
    """A plain paho client on the TLS listener with ``identity``'s certificate, connected
    and running its network thread."""
    cert = material.client(identity)
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(ca_certs=str(material.ca_cert), certfile=str(cert.cert), keyfile=str(cert.key))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client: Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)


def _forged_hello(n: int) -> tuple[str, bytes]:
    """A complete, valid message from "parent" to "scada"'s actor "rx"."""
    message = Message.create("parent", "scada", Hello(n=n), actor="rx")
    return JsonCodec.topic(message), JsonCodec.encode(message)


class Intruder:
    """A client with a valid certificate ("intruder") that writes where it should not and
    listens where it should not, and records whatever reaches it. Blocking methods: call
    them in a worker thread."""

    ECHO = "gw/intruder/echo"

    def __init__(self, material: TlsMaterial, port: int) -> None:
        self.received: list[str] = []
        self._arrived = threading.Condition()
        self.client = _tls_client(material, "intruder", port, "intruder")
        self.client.on_message = self._on_message

    def _on_message(self, _c: Client, _u: Any, message: Any) -> None:
        with self._arrived:
            self.received.append(message.topic)
            self._arrived.notify_all()

    def listen(self, *topic_filters: str) -> None:
        for topic_filter in topic_filters:
            _subscribe(self.client, topic_filter)

    def flush(self) -> None:
        """Publish to its own echo topic and wait for the echo: everything the broker had
        routed to this client before is then in :attr:`received` (one ordered stream)."""
        _publish(self.client, self.ECHO, b"echo")
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.ECHO in self.received, TIMEOUT):
                raise TimeoutError("the echo did not come back")

    def close(self) -> None:
        close_client(self.client)


@pytest.mark.broker
async def test_acl_confines_each_gateway_and_an_intruder_cannot_inject_or_listen(
    mosquitto_factory: MosquittoFactory, tls_material: TlsMaterial
) -> None:
    broker = mosquitto_factory(tls=tls_material, tls_identity_as_username=True, acl=ACL)
    assert broker.tls_port is not None
    port = broker.tls_port
    parent = Proactor(
        ProactorSettings(
            name="parent",
            links={
                "scada": LinkSettings(
                    peer="scada", role="downstream", broker=_tls(tls_material, "gateway", port)
                )
            },
        ),
        REGISTRY,
    )
    scada = Proactor(
        ProactorSettings(
            name="scada",
            links={
                "parent": LinkSettings(
                    peer="parent", role="upstream", broker=_tls(tls_material, "scada", port)
                )
            },
        ),
        REGISTRY,
    )
    rx = Recorder("rx", scada, reply_link="parent", reply_actor="collector")
    collector = Recorder("collector", parent)
    scada.add_communicator(rx)
    parent.add_communicator(collector)
    async with running(parent, scada):
        await wait_active(parent, "scada")
        await wait_active(scada, "parent")
        # The intruder's certificate comes from the same CA, so the broker lets it in.
        intruder = await asyncio.to_thread(Intruder, tls_material, port)
        try:
            await asyncio.to_thread(intruder.listen, "gw/+/to/scada/#", "gw/#", Intruder.ECHO)
            with scada.listener("message.dispatched") as heard:
                # The ACL drops what it writes outside gw/intruder/, however well formed.
                for n in (1001, 1002):
                    await asyncio.to_thread(_publish, intruder.client, *_forged_hello(n))
                # The broker handled the forgeries (PUBACKs) before this legitimate traffic,
                # so scada would have received them first.
                for n in range(3):
                    assert parent.send_to_peer("scada", Hello(n=n), actor="rx").is_ok()
                await wait_until(lambda: len(rx.received) == 3, heard, TIMEOUT)
                # Control: the same forged bytes from the holder of the parent's certificate
                # do arrive, so it is the ACL, not the message, that stopped the intruder.
                insider = await asyncio.to_thread(
                    _tls_client, tls_material, "gateway", port, "parent-insider"
                )
                try:
                    await asyncio.to_thread(_publish, insider, *_forged_hello(1003))
                finally:
                    await asyncio.to_thread(close_client, insider)
                await wait_until(lambda: len(rx.received) == 4, heard, TIMEOUT)
            with parent.listener("message.dispatched") as answers:
                await wait_until(lambda: len(collector.received) == 4, answers, TIMEOUT)
            # Listening: the broker granted the subscriptions but delivered nothing of the
            # gateways' traffic (8 messages and their acks went by).
            await asyncio.to_thread(intruder.flush)
        finally:
            await asyncio.to_thread(intruder.close)
    assert [m.payload.n for m in rx.received] == [0, 1, 2, 1003]
    assert [m.payload.n for m in collector.received] == [0, 1, 2, 1003]
    assert intruder.received == [Intruder.ECHO]
    for proactor, link in ((parent, "scada"), (scada, "parent")):
        stats = proactor.stats.link(link)
        assert stats.subscription_failures == 0
        assert stats.decode_errors_total == 0
        assert stats.connects == 1


def _subscribe(client: Client, topic_filter: str) -> bool:
    """Subscribe and return whether the broker granted it (False on a failure SUBACK).
    Blocking: run it in a worker thread."""
    answered = threading.Event()
    granted: list[bool] = []

    def on_subscribe(_c: Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        granted.append(bool(codes) and not codes[0].is_failure)
        answered.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic_filter, qos=1)
    if not answered.wait(TIMEOUT):
        raise TimeoutError(f"no SUBACK for {topic_filter}")
    return granted[0]


# -- the source of a message must be the link's peer ----------------------------------------


def _plain_broker(broker: Mosquitto, **overrides: Any) -> BrokerSettings:
    return BrokerSettings(
        port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5, **overrides
    )


async def _subscribed(proactor: Proactor, link: str) -> None:
    """Return once ``link`` is connected and subscribed, waiting for its peer (no peer runs
    in these tests, so that is as far as it gets)."""
    with proactor.listener("link.state") as states:
        if proactor.link_state(link) != "awaiting_peer":
            await states.wait_for(is_state("awaiting_peer", link), TIMEOUT)


def _raw_publish(port: int, items: list[tuple[str, bytes]]) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id="raw-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in items:
            _publish(client, topic, payload)
    finally:
        close_client(client)


def _envelope(src: str, dst: str, n: int, *, topic_src: str | None = None) -> tuple[str, bytes]:
    message = Message.create(src, dst, Hello(n=n), actor="rx")
    topic = JsonCodec.topic(message)
    if topic_src is not None:
        topic = topic.replace(f"gw/{src}/", f"gw/{topic_src}/", 1)
    return topic, JsonCodec.encode(message)


@pytest.mark.broker
async def test_a_header_that_contradicts_the_topic_is_rejected_and_counted(
    mosquitto: Mosquitto,
) -> None:
    child = Proactor(
        ProactorSettings(
            name="child",
            links={
                "up": LinkSettings(peer="parent", role="upstream", broker=_plain_broker(mosquitto))
            },
        ),
        REGISTRY,
    )
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    link = child.link("up")
    async with running(child):
        await _subscribed(child, "up")
        with child.listener("message.dispatched") as heard, child.listener("problem") as problems:
            await asyncio.to_thread(
                _raw_publish,
                mosquitto.port,
                [
                    # On the parent's topic, but the header says it is from someone else...
                    _envelope("intruder", "child", 1, topic_src="parent"),
                    _envelope("intruder", "child", 2, topic_src="parent"),
                    # ...and the real thing, from the parent, after them.
                    _envelope("parent", "child", 3),
                ],
            )
            await wait_until(lambda: len(rx.received) == 1, heard, TIMEOUT)
            reported = await problems.get(TIMEOUT)
    assert [m.payload.n for m in rx.received] == [3]
    assert link.stats.decode_errors == {"mismatch": 2}
    assert reported.source == "up: decode.mismatch"
    assert "intruder" in reported.data["details"]


@pytest.mark.broker
async def test_a_message_from_another_gateway_than_the_peer_is_rejected_and_counted(
    mosquitto: Mosquitto,
) -> None:
    """A persistent session keeps the subscription of an earlier configuration (the gateway's
    parent used to be "oldparent"): the broker still delivers oldparent's messages, and the
    link must refuse them because they do not come from its peer."""

    def child(peer: str) -> tuple[Proactor, Recorder]:
        broker = _plain_broker(mosquitto, clean_session=False)
        link = LinkSettings(peer=peer, role="upstream", broker=broker, client_id="child-up")
        proactor = Proactor(ProactorSettings(name="child", links={"up": link}), REGISTRY)
        recorder = Recorder("rx", proactor)
        proactor.add_communicator(recorder)
        return proactor, recorder

    before, _ = child("oldparent")
    async with running(before):
        await _subscribed(before, "up")
    after, rx = child("parent")
    link = after.link("up")
    async with running(after):
        await _subscribed(after, "up")
        with after.listener("message.dispatched") as heard, after.listener("problem") as problems:
            await asyncio.to_thread(
                _raw_publish,
                mosquitto.port,
                [_envelope("oldparent", "child", 1), _envelope("parent", "child", 2)],
            )
            await wait_until(lambda: len(rx.received) == 1, heard, TIMEOUT)
            reported = await problems.get(TIMEOUT)
    assert [m.payload.n for m in rx.received] == [2]
    assert link.stats.rejected_src == 1
    assert link.stats.messages_in["test.hello"] == 1
    assert reported.source == "up: decode.wrong_peer"


@pytest.mark.parametrize("topic_filter", ["+/+/to/child/#", "+/status", "+/#"])
def test_raw_filters_that_overlap_the_gateway_topics_are_refused(topic_filter: str) -> None:
    child = Proactor(
        ProactorSettings(name="child", links={"up": LinkSettings(peer="parent")}), REGISTRY
    )
    child.add_communicator(Recorder("rx", child))
    with pytest.raises(ValueError, match="overlaps"):
        child.subscribe_raw("up", topic_filter, "rx")


# -- secrets --------------------------------------------------------------------------------

PARENT_SECRET = "parent-pw-Zq8v4TtY"
CHILD_SECRET = "child-pw-Rk2m9WcL"
WRONG_SECRET = "wrong-pw-Hn5x1PoE"
SECRETS = (PARENT_SECRET, CHILD_SECRET, WRONG_SECRET)


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"


@pytest.mark.broker
async def test_secrets_never_appear_in_logs_status_or_repr(
    mosquitto_factory: MosquittoFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(users={"parent": PARENT_SECRET, "child": CHILD_SECRET})

    def settings(
        name: str, peer: str, role: str, password: str, client_id: str | None = None
    ) -> ProactorSettings:
        login = _plain_broker(broker, username=name, password=SecretStr(password))
        link = LinkSettings(peer=peer, role=role, broker=login, client_id=client_id)
        return ProactorSettings(name=name, links={"link": link})

    parent = Proactor(settings("parent", "child", "downstream", PARENT_SECRET), REGISTRY)
    child = Proactor(settings("child", "parent", "upstream", CHILD_SECRET), REGISTRY)
    # Another host posing as the child: same name, its own state directory (one process may
    # not run two instances of a gateway on one state directory: the instance lock).
    impostor_settings = settings("child", "parent", "upstream", WRONG_SECRET, client_id="impostor")
    impostor_settings = impostor_settings.model_copy(
        update={"paths": PathSettings(state_dir=tmp_path / "impostor")}
    )
    impostor = Proactor(impostor_settings, REGISTRY)
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    statuses: list[str] = []
    async with running(parent, child):
        await wait_active(parent, "link")
        await wait_active(child, "link")
        with child.listener("message.dispatched") as heard:
            assert parent.send_to_peer("link", Hello(n=1), actor="rx").is_ok()
            await wait_until(lambda: len(rx.received) == 1, heard, TIMEOUT)
        statuses += [json.dumps(parent.status()), json.dumps(child.status())]
        with impostor.listener("link.connect_failed") as failures:
            async with running(impostor):
                refused = await failures.get(TIMEOUT)
                statuses.append(json.dumps(impostor.status()))
    assert "not authori" in refused.data["reason"].lower()
    assert "CONNACK refused" in caplog.text  # the refusal itself was logged...
    _assert_no_secret(caplog.text, "the log")  # ...without the password
    for record in caplog.records:
        _assert_no_secret(repr(record.args), f"the arguments of {record.name}: {record.msg}")
    for text in statuses:
        _assert_no_secret(text, "status()")
    for proactor in (parent, child, impostor):
        _assert_no_secret(repr(proactor.settings), "repr(settings)")
        _assert_no_secret(str(proactor.settings), "str(settings)")
        _assert_no_secret(proactor.settings.model_dump_json(), "the settings' JSON")
        _assert_no_secret(repr(proactor.settings.model_dump()), "the settings' dump")


def test_config_command_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text(
        f'name = "child"\n[links.up]\npeer = "parent"\n'
        f'broker.username = "child"\nbroker.password = "{CHILD_SECRET}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWPROACTOR_")}
    env.update(
        GWPROACTOR_WEB__TOKEN=PARENT_SECRET,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        COLUMNS="200",
    )
    done = subprocess.run(
        [sys.executable, "-m", "gwproactor", "config", "gw.toml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "links.up.broker.password" in output
    assert "web.token" in output
    assert output.count("********") == 2
    _assert_no_secret(output, "`gwproactor config` output")


@pytest.mark.parametrize("value", ["98765432123", f'["{CHILD_SECRET}"]'])
def test_a_mistyped_secret_is_not_echoed_in_config_errors(tmp_path: Path, value: str) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(f'name = "c"\n[links.up]\npeer = "p"\nbroker.password = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=None, environ={})
    message = str(info.value)
    assert "links.up.broker.password" in message
    assert "98765432123" not in message
    _assert_no_secret(message, "the ConfigError")
