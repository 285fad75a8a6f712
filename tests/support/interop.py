"""pytest plugin: one end-to-end suite against several MQTT brokers (interoperability).

Load it from the root ``tests/conftest.py`` (``pytest_plugins = (..., "tests.support.interop")``).
Fixtures:

* ``any_broker`` (function, parametrized ``mosquitto``/``nats``/``rabbitmq``): a started
  :class:`InteropBroker` on a private loopback port. A kind whose server is not installed is
  *skipped* with the reason (visible with ``-ra``), unlike the ``mosquitto`` fixture of
  :mod:`.fixtures`, which fails: mosquitto is the suite's own broker, the others are
  optional. mosquitto and NATS are started per test (a fraction of a second); RabbitMQ
  boots in 5 to 20 s, so one node serves the session and each test gets it running (it is
  restarted if a previous test left it killed). Tests sharing the node must use gateway
  names of their own (retained presence messages outlive a test).
* ``interop_rabbitmq`` (session): that node.

When a test fails, the log tails of the brokers it used are added to its report.
Like :mod:`.fixtures`, test modules may import names from here only under
``typing.TYPE_CHECKING``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from gwproactor.testing.mosquitto import Mosquitto, MosquittoNotFoundError, find_mosquitto
from gwproactor.testing.nats import (
    DOTTED_TOPICS_VERSION,
    NatsNotFoundError,
    NatsServer,
    find_nats_server,
    nats_server_version,
    supports_dotted_topics,
)
from gwproactor.testing.rabbitmq import (
    MQTT5_VERSION,
    RabbitMQ,
    RabbitMQNotFoundError,
    find_epmd,
    find_rabbitmq_server,
    rabbitmq_version,
)

__all__ = (
    "BROKER_KINDS",
    "BrokerProcess",
    "InteropBroker",
    "any_broker",
    "interop_rabbitmq",
    "pytest_runtest_makereport",
)

BROKER_KINDS = ("mosquitto", "nats", "rabbitmq")

_LOG_TAIL_LINES = 60
_VERSION_TIMEOUT_S = 10.0
_brokers_key = pytest.StashKey[list["InteropBroker"]]()


class BrokerProcess(Protocol):
    """What :class:`Mosquitto`, :class:`NatsServer` and :class:`RabbitMQ` have in common."""

    name: str

    @property
    def port(self) -> int: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> object: ...

    def kill(self) -> None: ...

    async def akill(self) -> None: ...

    async def arestart(self, *, kill: bool = False) -> object: ...

    def log_tail(self, lines: int = 40) -> str: ...


@dataclass(frozen=True)
class InteropBroker:
    """A started broker of one kind and what the suite must know about it.

    ``dotted_topics`` is None when a ``.`` inside a topic level passes through the broker
    unchanged (as MQTT says it must), else what the broker does instead. gwproactor's
    topics (``gw/<src>/to/<dst>/<message_type>``) carry dotted message types
    (``gw.ping``, ``gw.ack``, ...), so this decides whether it works there unmodified.
    """

    kind: str
    process: BrokerProcess
    version: str
    dotted_topics: str | None = None
    mqtt5: bool = True

    host = "127.0.0.1"

    @property
    def port(self) -> int:
        """The MQTT port, the same across restarts."""
        return self.process.port

    @property
    def running(self) -> bool:
        return self.process.running

    async def akill(self) -> None:
        """SIGKILL the broker (and, for RabbitMQ, everything it spawned) and wait."""
        await self.process.akill()

    async def arestart(self) -> None:
        """Start the broker again on the same port (kills it first if it runs); returns once
        it answers an MQTT CONNECT."""
        await self.process.arestart(kill=True)

    def leftover_pids(self) -> list[int]:
        """Processes of this broker still alive (only RabbitMQ spawns more than one)."""
        if isinstance(self.process, RabbitMQ):
            return self.process.leftover_pids()
        return []

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def __str__(self) -> str:
        return f"{self.kind} {self.version} on port {self.port}"


def _mosquitto(work_dir: Path) -> InteropBroker:
    try:
        binary = find_mosquitto()
    except MosquittoNotFoundError as exc:
        pytest.skip(f"mosquitto not installed: {exc}")
    version = _mosquitto_version(binary)
    return InteropBroker("mosquitto", Mosquitto(work_dir, binary=binary), version)


def _mosquitto_version(binary: Path) -> str:
    """From ``mosquitto -h`` ("mosquitto version 2.0.11"; it exits non-zero)."""
    try:
        done = subprocess.run(
            [str(binary), "-h"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown version"
    match = re.search(r"version (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown version"


def _nats(work_dir: Path) -> InteropBroker:
    try:
        binary = find_nats_server()
    except NatsNotFoundError as exc:
        pytest.skip(str(exc))
    version = nats_server_version(binary)
    dotted = None
    if not supports_dotted_topics(version):
        first = ".".join(map(str, DOTTED_TOPICS_VERSION))
        dotted = (
            "closes the connection of a client that publishes to a topic containing '.' "
            f"(accepted from {first})"
        )
    text = ".".join(map(str, version))
    # NATS speaks MQTT 3.1.1 only.
    return InteropBroker(
        "nats", NatsServer(work_dir, binary=binary), text, dotted_topics=dotted, mqtt5=False
    )


def _rabbitmq(work_dir: Path) -> InteropBroker:
    try:
        binary = find_rabbitmq_server()
        epmd = find_epmd()
    except RabbitMQNotFoundError as exc:
        pytest.skip(str(exc))
    version = rabbitmq_version(binary)
    text = ".".join(map(str, version)) if version is not None else "unknown version"
    dotted = (
        "turns '.' in a topic into a level separator: a message published on "
        "'gw/a/to/b/x.y' is delivered as 'gw/a/to/b/x/y' (documented limitation)"
    )
    node = RabbitMQ(work_dir, binary=binary, epmd=epmd)
    mqtt5 = version is not None and version >= MQTT5_VERSION
    return InteropBroker("rabbitmq", node, text, dotted_topics=dotted, mqtt5=mqtt5)


@pytest.fixture(scope="session")
def interop_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropBroker]:
    """A RabbitMQ node for the session (skipped if not installed); killed at the end."""
    broker = _rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    try:
        broker.process.start()
        yield broker
    finally:
        broker.process.kill()


@pytest.fixture(params=[pytest.param(kind, id=kind) for kind in BROKER_KINDS])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InteropBroker]:
    """A started broker of each kind (see the module docstring); killed at teardown, except
    the session's RabbitMQ node, which is only made sure to run."""
    kind: str = request.param
    if kind == "rabbitmq":
        broker: InteropBroker = request.getfixturevalue("interop_rabbitmq")
        if not broker.running:
            broker.process.start()
        owned = False
    else:
        broker = (_mosquitto if kind == "mosquitto" else _nats)(tmp_path / kind)
        broker.process.start()
        owned = True
    request.node.stash.setdefault(_brokers_key, []).append(broker)
    try:
        yield broker
    finally:
        if owned:
            broker.process.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the log tails of the interop brokers a failed test used to its report."""
    report = yield
    if report.failed:
        for broker in item.stash.get(_brokers_key, []):
            with contextlib.suppress(OSError):
                title = f"{broker.kind} {broker.process.name} log (last {_LOG_TAIL_LINES} lines)"
                report.sections.append((title, broker.log_tail(_LOG_TAIL_LINES)))
    return report
