"""Tests of the test infrastructure itself: ports, TLS material, real mosquitto brokers.

Clients are paho-mqtt 2.x clients. Until connected they are driven by hand (``loop()`` in
this thread, so a refused connection is observed deterministically, without paho's
automatic reconnects); once connected, by paho's own network thread. Every wait is on a
queue or an event with a timeout; nothing sleeps.
"""

from __future__ import annotations

import base64
import os
import queue
import select
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gwproactor.testing.certs import TlsMaterial, make_tls_material
from gwproactor.testing.mosquitto import (
    Mosquitto,
    MosquittoError,
    MosquittoNotFoundError,
    MosquittoStartError,
    find_mosquitto,
    hash_password,
)
from gwproactor.testing.ports import ephemeral_port_range, free_listen_port, free_port, port_is_free

from .paho import close_client

if TYPE_CHECKING:  # importing the plugin module at run time would defeat its registration
    from .fixtures import MosquittoFactory

# The fixtures plugin, by the name this package is imported under (``support`` or
# ``tests.support``, depending on whether ``tests`` is a package), unless a conftest already
# loaded or imported it: registering a module imported earlier would make pytest warn that
# it cannot rewrite its assertions (an error under ``filterwarnings = error``).
_FIXTURES = f"{__package__}.fixtures"
pytest_plugins = () if _FIXTURES in sys.modules else (_FIXTURES,)

TIMEOUT = 5.0
V311 = MQTTProtocolVersion.MQTTv311
V5 = MQTTProtocolVersion.MQTTv5


# -- a small synchronous paho client for the tests ------------------------------------------


@dataclass(frozen=True)
class Connack:
    """The broker answered CONNECT."""

    reason: ReasonCode
    session_present: bool

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure


@dataclass(frozen=True)
class Refused:
    """No CONNACK: the socket or TLS handshake failed, or the connection was dropped."""

    detail: str


class Client:
    """A paho client whose callbacks feed queues. Not thread-safe: one test thread uses it."""

    def __init__(
        self,
        client_id: str | None = None,
        *,
        protocol: MQTTProtocolVersion = V311,
        clean_session: bool = True,
    ) -> None:
        """``clean_session`` is the v3.1.1 flag, or the v5 "clean start" flag."""
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:12]}",
            protocol=protocol,
            clean_session=clean_session if protocol != V5 else None,
            reconnect_on_failure=False,  # tests reconnect explicitly; no hidden retry loops
        )
        self._clean_start = clean_session if protocol == V5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        self.connects: queue.Queue[Connack] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[tuple[int, list[ReasonCode]]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connection_events: queue.Queue[Connack | Refused] = queue.Queue()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = self._on_message
        self._threaded = False

    def tls(self, ca_cert: Path, cert: tuple[Path, Path] | None = None) -> Client:
        """Use TLS, trusting ``ca_cert``, presenting ``cert`` (certificate, key) if given."""
        context = ssl.create_default_context(cafile=str(ca_cert))
        if cert is not None:
            context.load_cert_chain(*cert)
        self.paho.tls_set_context(context)
        return self

    def connect(self, port: int) -> Connack | Refused:
        """Connect and wait for the CONNACK or the loss of the connection.

        paho's network thread runs from the start; on refusal it is stopped before paho's
        first automatic reconnect (which waits at least a second).
        """
        try:
            self.paho.connect("127.0.0.1", port, keepalive=30, clean_start=self._clean_start)
        except OSError as exc:  # ssl.SSLError is an OSError
            return Refused(f"connect raised {exc!r}")
        self.paho.loop_start()
        self._threaded = True
        outcome = self._connection_events.get(timeout=TIMEOUT)
        if not (isinstance(outcome, Connack) and outcome.accepted):
            self.close()
        return outcome

    def subscribe(self, topic: str, qos: int = 1) -> list[ReasonCode]:
        """Subscribe and return the SUBACK's reason codes."""
        rc, mid = self.paho.subscribe(topic, qos)
        assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        while True:
            acked_mid, codes = self.subacks.get(timeout=TIMEOUT)
            if acked_mid == mid:
                return codes

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and, for QoS > 0, wait until the broker acknowledged it."""
        info = self.paho.publish(topic, payload, qos=qos)
        if qos:
            info.wait_for_publish(timeout=TIMEOUT)
            assert info.is_published()

    def message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        """Disconnect (if connected) and stop paho's thread. Idempotent."""
        if self._threaded:
            close_client(self.paho)
            self._threaded = False
        else:
            self.paho.disconnect()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connack = Connack(reason_code, flags.session_present)
        self.connects.put(connack)
        self._connection_events.put(connack)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.disconnects.put(reason_code)
        self._connection_events.put(Refused(f"disconnected: {reason_code}"))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.subacks.put((mid, reason_codes))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(msg)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """A list to put clients in; each is disconnected and its thread stopped at teardown."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def client(clients: list[Client]) -> Client:
    made = Client()
    clients.append(made)
    return made


@pytest.fixture
def topic() -> str:
    """A topic prefix unique to the test."""
    return f"test/{uuid.uuid4().hex[:12]}"


def _connected(
    clients: list[Client],
    port: int,
    client_id: str | None = None,
    *,
    protocol: MQTTProtocolVersion = V311,
    clean_session: bool = True,
) -> Client:
    """A new client, tracked for teardown, connected and accepted."""
    made = Client(client_id, protocol=protocol, clean_session=clean_session)
    clients.append(made)
    connack = made.connect(port)
    assert isinstance(connack, Connack), connack
    assert connack.accepted, connack
    return made


# -- ports ----------------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)


def test_free_listen_port_is_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_port_range()
    ports = {free_listen_port() for _ in range(20)}
    assert all(not low <= port <= high for port in ports)
    assert all(port_is_free(port) for port in ports)
    assert free_listen_port(exclude=frozenset(ports)) not in ports


def test_port_is_free_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])


# -- TLS material ---------------------------------------------------------------------------


def test_tls_material_is_mutually_verifiable(tls_material: TlsMaterial) -> None:
    """An in-memory handshake: the server requires a client certificate, the client checks
    the server's name against both 127.0.0.1 and localhost."""
    for server_name in ("127.0.0.1", "localhost"):
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(tls_material.server_cert, tls_material.server_key)
        server_ctx.load_verify_locations(tls_material.ca_cert)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        client_ctx = ssl.create_default_context(cafile=str(tls_material.ca_cert))
        client_ctx.load_cert_chain(*tls_material.client("scada"))
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client_side = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
        server_side = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        done = {"client": False, "server": False}
        for _ in range(10):
            for name, side in (("client", client_side), ("server", server_side)):
                if not done[name]:
                    try:
                        side.do_handshake()
                        done[name] = True
                    except ssl.SSLWantReadError:
                        pass
            s_in.write(c_out.read())
            c_in.write(s_out.read())
            if all(done.values()):
                break
        assert all(done.values())
        peer = server_side.getpeercert()
        assert peer is not None
        assert (("commonName", "scada"),) in peer["subject"]


def test_tls_material_layout(tmp_path: Path) -> None:
    material = make_tls_material(tmp_path / "tls", ["one", "two"])
    assert material.client_names == ("one", "two")
    for path in (
        material.ca_cert,
        material.server_cert,
        material.server_key,
        *material.client("two"),
    ):
        assert path.is_file()
    assert material.server_key.stat().st_mode & 0o077 == 0
    with pytest.raises(KeyError, match="three"):
        material.client("three")
    with pytest.raises(ValueError, match="duplicate"):
        make_tls_material(tmp_path / "dup", ["a", "a"])
    with pytest.raises(ValueError, match="invalid"):
        make_tls_material(tmp_path / "bad", ["a/b"])


# -- brokers: basics ------------------------------------------------------------------------


@pytest.mark.broker
def test_publish_and_receive(mosquitto: Mosquitto, clients: list[Client], topic: str) -> None:
    assert mosquitto.running
    assert mosquitto.pid is not None
    sub = _connected(clients, mosquitto.port)
    assert [c.value for c in sub.subscribe(f"{topic}/#")] == [1]
    pub = _connected(clients, mosquitto.port, protocol=V5)
    pub.publish(f"{topic}/a", b"hello")
    message = sub.message()
    assert (message.topic, message.payload, message.qos) == (f"{topic}/a", b"hello", 1)


@pytest.mark.broker
def test_kill_and_restart_on_the_same_port(
    mosquitto: Mosquitto, clients: list[Client], topic: str
) -> None:
    port, pid = mosquitto.port, mosquitto.pid
    survivor = _connected(clients, port)
    mosquitto.kill()
    assert (mosquitto.running, mosquitto.pid) == (False, None)
    survivor.disconnects.get(timeout=TIMEOUT)  # the client noticed the broker is gone
    refused = Client()
    clients.append(refused)
    assert isinstance(refused.connect(port), Refused)

    # The killed broker's side of the survivor's connection is left in FIN_WAIT/TIME_WAIT on
    # this port; mosquitto's SO_REUSEADDR lets the new process bind it anyway, at once.
    mosquitto.start()
    assert (mosquitto.port, mosquitto.running) == (port, True)
    assert mosquitto.pid not in (None, pid)  # a new process
    again = _connected(clients, port)
    again.subscribe(f"{topic}/#")
    again.publish(f"{topic}/x", b"after restart")
    assert again.message().payload == b"after restart"


@pytest.mark.broker
def test_graceful_restart_and_log(mosquitto: Mosquitto, clients: list[Client]) -> None:
    _connected(clients, mosquitto.port)
    mosquitto.restart()
    mosquitto.restart(kill=True)
    assert mosquitto.starts == 3
    _connected(clients, mosquitto.port)
    log = mosquitto.log_path.read_text()
    assert log.count("==== test harness: starting") == 3
    assert "terminating" in log  # the graceful stop
    assert mosquitto.log_tail(3).splitlines() == log.splitlines()[-3:]


@pytest.mark.broker
def test_two_brokers_at_once(
    mosquitto_factory: MosquittoFactory, clients: list[Client], topic: str
) -> None:
    first, second = mosquitto_factory(), mosquitto_factory()
    assert first.port != second.port
    assert first.work_dir != second.work_dir
    sub1, sub2 = _connected(clients, first.port), _connected(clients, second.port)
    sub1.subscribe(f"{topic}/#")
    sub2.subscribe(f"{topic}/#")
    _connected(clients, first.port).publish(f"{topic}/one", b"1")
    assert sub1.message().payload == b"1"
    _connected(clients, second.port).publish(f"{topic}/two", b"2")
    assert sub2.message().payload == b"2"  # the first message it gets is its own broker's
    first.kill()
    assert second.running


@pytest.mark.broker
async def test_async_lifecycle(tmp_path: Path, clients: list[Client]) -> None:
    async with Mosquitto(tmp_path / "broker") as broker:
        assert (broker.running, broker.starts) == (True, 1)
        _connected(clients, broker.port)
        await broker.akill()
        assert (broker.running, broker.starts) == (False, 1)
        await broker.arestart()
        assert (broker.running, broker.starts) == (True, 2)
        _connected(clients, broker.port)
    assert (broker.running, broker.pid) == (False, None)


@pytest.mark.broker
def test_context_manager_and_unstarted_port(tmp_path: Path, clients: list[Client]) -> None:
    broker = Mosquitto(tmp_path / "broker")
    port = broker.port  # known before the broker exists: clients can be pointed at it
    refused = Client()
    clients.append(refused)
    assert isinstance(refused.connect(port), Refused)
    with broker:
        assert broker.port == port
        _connected(clients, port)
    assert not broker.running
    broker.stop()  # idempotent
    broker.kill()


@pytest.mark.broker
def test_factory_tracks_and_closes_every_broker(mosquitto_factory: MosquittoFactory) -> None:
    brokers = [mosquitto_factory(), mosquitto_factory(name="named"), mosquitto_factory.create()]
    with pytest.raises(ValueError, match="named"):
        mosquitto_factory.create(name="named")
    assert mosquitto_factory.brokers == tuple(brokers)
    assert [b.running for b in brokers] == [True, True, False]
    assert [b.work_dir.name for b in brokers] == ["broker0", "named", "broker2"]
    mosquitto_factory.close()  # what the fixture's teardown does (again: idempotent)
    assert not any(b.running for b in brokers)


# -- brokers: failures ----------------------------------------------------------------------


@pytest.mark.broker
def test_bad_config_fails_with_the_log(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory.create(extra_config="no_such_option 1")
    with pytest.raises(MosquittoStartError, match="exited with code") as caught:
        broker.start()
    assert "no_such_option" in str(caught.value)
    assert not broker.running


@pytest.mark.broker
def test_fixed_port_in_use_fails(mosquitto: Mosquitto, mosquitto_factory: MosquittoFactory) -> None:
    clash = mosquitto_factory.create(port=mosquitto.port)
    with pytest.raises(MosquittoStartError, match=f"{mosquitto.port}.*already in use"):
        clash.start()
    assert (clash.running, clash.port, mosquitto.running) == (False, mosquitto.port, True)
    with pytest.raises(MosquittoError, match="already running"):
        mosquitto.start()


@pytest.mark.broker
def test_chosen_port_taken_meanwhile_is_replaced(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory.create()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", broker.port))
        squatter.listen()
        taken = broker.port
        broker.start()
    assert broker.running
    assert broker.port != taken


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_MOSQUITTO", raising=False)
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MosquittoNotFoundError, match=r"scripts/_bootstrap\.sh"):
        find_mosquitto()
    monkeypatch.setenv("GW_MOSQUITTO", "/nonexistent/mosquitto")
    with pytest.raises(MosquittoNotFoundError, match="GW_MOSQUITTO"):
        find_mosquitto()


# -- brokers: security and sessions ---------------------------------------------------------


def _log_size(broker: Mosquitto) -> int:
    try:
        return broker.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def _await_logged(broker: Mosquitto, offset: int, text: str, timeout: float = 30.0) -> None:
    """Until the broker's log, past byte ``offset``, contains ``text``. The log is a file
    nothing signals on: re-read it every 20 ms, up to a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with broker.log_path.open("rb") as log:
            log.seek(offset)
            if text.encode() in log.read():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged; log tail:\n{broker.log_tail(40)}")
        time.sleep(0.02)


@pytest.mark.broker
def test_tls_listener_requires_a_client_certificate(
    mosquitto_tls: Mosquitto, tls_material: TlsMaterial, clients: list[Client], topic: str
) -> None:
    assert mosquitto_tls.tls_port is not None
    assert mosquitto_tls.tls_port != mosquitto_tls.port
    anonymous = Client().tls(tls_material.ca_cert)
    clients.append(anonymous)
    mark = _log_size(mosquitto_tls)
    assert isinstance(anonymous.connect(mosquitto_tls.tls_port), Refused)
    # OpenSSL sends its alert before the broker logs why, so the client can see the close
    # before the line is written: await the line (written after this attempt began).
    _await_logged(mosquitto_tls, mark, "peer did not return a certificate")

    rogue_ca = make_tls_material(mosquitto_tls.work_dir / "rogue", ["gateway"])
    rogue = Client().tls(tls_material.ca_cert, rogue_ca.client("gateway"))
    clients.append(rogue)
    mark = _log_size(mosquitto_tls)
    assert isinstance(rogue.connect(mosquitto_tls.tls_port), Refused)
    _await_logged(mosquitto_tls, mark, "certificate verify failed")

    plain = Client()  # no TLS at all on the TLS port
    clients.append(plain)
    assert isinstance(plain.connect(mosquitto_tls.tls_port), Refused)

    gateway = Client().tls(tls_material.ca_cert, tls_material.client("gateway"))
    clients.append(gateway)
    connack = gateway.connect(mosquitto_tls.tls_port)
    assert isinstance(connack, Connack)
    assert connack.accepted
    gateway.subscribe(f"{topic}/#")
    gateway.publish(f"{topic}/tls", b"secret")
    assert gateway.message().payload == b"secret"


@pytest.mark.broker
def test_identity_as_username_meets_the_acl(
    mosquitto_factory: MosquittoFactory, tls_material: TlsMaterial, clients: list[Client]
) -> None:
    acl = "user gateway\ntopic readwrite gw/#\ntopic readwrite public/#\n"
    acl += "user scada\ntopic readwrite public/#\n"
    broker = mosquitto_factory(tls=tls_material, tls_identity_as_username=True, acl=acl)
    assert broker.tls_port is not None
    made = {}
    for name in ("gateway", "scada"):
        made[name] = Client().tls(tls_material.ca_cert, tls_material.client(name))
        clients.append(made[name])
        connack = made[name].connect(broker.tls_port)
        assert isinstance(connack, Connack)
        assert connack.accepted
        made[name].subscribe("gw/#")
        made[name].subscribe("public/#")
    made["gateway"].publish("gw/status", b"up")
    made["gateway"].publish("public/hello", b"hi")
    assert [made["gateway"].message().topic for _ in range(2)] == ["gw/status", "public/hello"]
    # In order from one publisher: had scada been allowed gw/status, it would come first.
    assert made["scada"].message().topic == "public/hello"
    assert made["scada"].messages.empty()


@pytest.mark.broker
@pytest.mark.parametrize("protocol", [V311, V5])
def test_acl_denies_a_topic(
    mosquitto_factory: MosquittoFactory, clients: list[Client], protocol: MQTTProtocolVersion
) -> None:
    """Mosquitto 2.0 grants the SUBACK but never delivers what the ACL does not let one read."""
    acl = "topic readwrite allowed/#\ntopic write writeonly/#\ntopic read readonly/#\n"
    broker = mosquitto_factory(acl=acl)
    sub = _connected(clients, broker.port, protocol=protocol)
    for pattern in ("allowed/#", "writeonly/#", "readonly/#"):
        sub.subscribe(pattern)
    pub = _connected(clients, broker.port, protocol=protocol)
    pub.publish("writeonly/x", b"not readable")
    pub.publish("readonly/x", b"not writable")
    pub.publish("allowed/x", b"delivered")
    # In order from one publisher: had either of the first two been delivered, it would be first.
    assert sub.message().topic == "allowed/x"
    assert sub.messages.empty()


@pytest.mark.broker
def test_password_file(mosquitto_factory: MosquittoFactory, clients: list[Client]) -> None:
    broker = mosquitto_factory(users={"alice": "s3cret", "bob": "hunter2"})
    for user, password, accepted in (
        ("alice", "s3cret", True),
        ("bob", "hunter2", True),
        ("alice", "wrong", False),
        (None, None, False),
    ):
        made = Client()
        clients.append(made)
        if user is not None:
            made.paho.username_pw_set(user, password)
        outcome = made.connect(broker.port)
        assert isinstance(outcome, Connack), user
        assert outcome.reason.getName() == ("Success" if accepted else "Not authorized"), user


def test_hash_password_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (hash_password does not need it)")
    passwords = tmp_path / "passwords"
    passwords.write_text("carol:correct horse\n")
    subprocess.run([tool, "-U", str(passwords)], check=True, capture_output=True)
    _, written = passwords.read_text().strip().split(":", 1)
    salt_b64 = written.split("$")[3]
    assert hash_password("correct horse", salt=base64.b64decode(salt_b64)) == written


@pytest.mark.broker
@pytest.mark.parametrize("persistence", [True, False])
def test_persistent_session_across_restart(
    mosquitto_factory: MosquittoFactory, clients: list[Client], topic: str, persistence: bool
) -> None:
    broker = mosquitto_factory(persistence=persistence, max_queued_messages=10)
    sub = _connected(clients, broker.port, client_id=f"sub-{topic[5:]}", clean_session=False)
    sub.subscribe(f"{topic}/#", qos=1)
    sub.close()
    _connected(clients, broker.port).publish(f"{topic}/queued", b"while away", qos=1)

    broker.restart()
    assert broker.persistence_path.exists() == persistence

    again = Client(f"sub-{topic[5:]}", clean_session=False)
    clients.append(again)
    connack = again.connect(broker.port)
    assert isinstance(connack, Connack)
    assert connack.accepted
    assert connack.session_present == persistence
    if persistence:
        assert again.message().payload == b"while away"


@pytest.mark.broker
def test_broker_dies_with_a_hard_killed_owner(tmp_path: Path) -> None:
    """A pytest that is SIGKILLed leaves no orphan broker (PR_SET_PDEATHSIG via setpriv)."""
    if shutil.which("setpriv") is None or not hasattr(os, "pidfd_open"):
        pytest.skip("needs util-linux setpriv and pidfd_open (Linux)")
    owner_code = (
        "import sys; from pathlib import Path; from gwproactor.testing.mosquitto import Mosquitto\n"
        "broker = Mosquitto(Path(sys.argv[1])).start()\n"
        "print(broker.pid, flush=True)\n"
        "sys.stdin.read()\n"  # stay alive until killed
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code, str(tmp_path / "orphan")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert owner.stdout is not None
        broker_pid = int(owner.stdout.readline())
        pidfd = os.pidfd_open(broker_pid)
        try:
            owner.kill()
            owner.wait(timeout=TIMEOUT)
            readable, _, _ = select.select([pidfd], [], [], TIMEOUT)  # readable once it exits
            assert readable == [pidfd], "the broker outlived its owner"
        finally:
            os.close(pidfd)
    finally:
        owner.kill()
        owner.wait(timeout=TIMEOUT)
        for stream in (owner.stdin, owner.stdout):
            if stream is not None:
                stream.close()
