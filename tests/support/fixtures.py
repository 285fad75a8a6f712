"""pytest plugin: fixtures that start real mosquitto brokers and make TLS material.

Load it from the root ``tests/conftest.py`` with ``pytest_plugins = ("tests.support.fixtures",)``
(or the dotted name under which ``tests/support`` is importable). Fixtures:

* ``mosquitto_binary`` (session): the broker executable; *fails* the test with a message
  saying to run ``scripts/_bootstrap.sh`` when there is none (never skips silently).
* ``mosquitto_factory`` (function): a :class:`MosquittoFactory`; every broker it made is
  killed at teardown, whatever the test's outcome.
* ``mosquitto`` (function): a started plain broker (anonymous, no TLS, no persistence).
* ``tls_material`` (session): a CA, server and client certificates (:data:`TLS_CLIENTS`).
* ``mosquitto_tls`` (function): a started broker that also has a TLS listener requiring a
  client certificate from ``tls_material``, with the certificate's CN as username.

When a test fails, the log tails of the brokers it used are added to its report.

Test modules may import names from here only under ``typing.TYPE_CHECKING``: importing a
plugin module before pytest registers it disables its assertion rewriting, which pytest
reports as a warning (an error under this project's ``filterwarnings = error``). The same
holds for ``tests/support/__init__.py``, which therefore does not import this module.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Unpack

import pytest

from gwproactor.testing.certs import TlsMaterial, make_tls_material
from gwproactor.testing.mosquitto import (
    Mosquitto,
    MosquittoNotFoundError,
    MosquittoOptions,
    find_mosquitto,
)

__all__ = (
    "TLS_CLIENTS",
    "MosquittoFactory",
    "mosquitto",
    "mosquitto_binary",
    "mosquitto_factory",
    "mosquitto_tls",
    "pytest_runtest_makereport",
    "tls_material",
)

TLS_CLIENTS = ("gateway", "scada", "intruder")
"""Client certificate names in the ``tls_material`` fixture."""

_LOG_TAIL_LINES = 60
_factories_key = pytest.StashKey[list["MosquittoFactory"]]()


class MosquittoFactory:
    """Creates brokers in subdirectories of one base directory and tracks them all.

    Not thread-safe. :meth:`close` (called by the fixture's teardown) kills every broker.
    """

    def __init__(self, base_dir: Path, binary: Path | None = None) -> None:
        self.base_dir = base_dir
        self.binary = binary
        self._brokers: list[Mosquitto] = []

    @property
    def brokers(self) -> tuple[Mosquitto, ...]:
        """Every broker created so far, in creation order."""
        return tuple(self._brokers)

    def create(self, **options: Unpack[MosquittoOptions]) -> Mosquitto:
        """Return a new, *not started*, tracked broker in ``<base_dir>/<name>``.

        ``name`` defaults to ``broker<N>``; a name already used raises ``ValueError``.
        Cheap: no I/O until the broker is started.
        """
        name = options.pop("name", f"broker{len(self._brokers)}")
        if any(b.name == name for b in self._brokers):
            raise ValueError(f"a broker named {name!r} already exists")
        options["name"] = name
        options.setdefault("binary", self.binary)
        broker = Mosquitto(self.base_dir / name, **options)
        self._brokers.append(broker)
        return broker

    def __call__(self, **options: Unpack[MosquittoOptions]) -> Mosquitto:
        """:meth:`create` a broker and :meth:`Mosquitto.start` it; raises like ``start``."""
        return self.create(**options).start()

    async def astart(self, **options: Unpack[MosquittoOptions]) -> Mosquitto:
        """:meth:`create` a broker and await :meth:`Mosquitto.astart`."""
        return await self.create(**options).astart()

    def close(self) -> None:
        """Kill every broker (in reverse creation order). Raises an ``ExceptionGroup`` of the
        errors met, after trying them all."""
        errors: list[Exception] = []
        for broker in reversed(self._brokers):
            try:
                broker.kill()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("stopping mosquitto brokers failed", errors)


@pytest.fixture(scope="session")
def mosquitto_binary() -> Path:
    """The mosquitto executable; fails (does not skip) the test when it is not installed."""
    try:
        return find_mosquitto()
    except MosquittoNotFoundError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside the handler: no chained traceback noise


@pytest.fixture
def mosquitto_factory(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto_binary: Path
) -> Iterator[MosquittoFactory]:
    """A :class:`MosquittoFactory` under ``tmp_path/mosquitto``; kills its brokers at teardown."""
    factory = MosquittoFactory(tmp_path / "mosquitto", binary=mosquitto_binary)
    request.node.stash.setdefault(_factories_key, []).append(factory)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A started plain broker (port :attr:`Mosquitto.port`), killed at teardown."""
    return mosquitto_factory(name="mosquitto")


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """TLS material shared by the session, with client certificates for :data:`TLS_CLIENTS`."""
    return make_tls_material(tmp_path_factory.mktemp("tls"), TLS_CLIENTS)


@pytest.fixture
def mosquitto_tls(mosquitto_factory: MosquittoFactory, tls_material: TlsMaterial) -> Mosquitto:
    """A started broker with a plain listener and a TLS listener on :attr:`Mosquitto.tls_port`
    that requires a client certificate (its CN becomes the username)."""
    return mosquitto_factory(name="mosquitto-tls", tls=tls_material, tls_identity_as_username=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the log tails of the brokers a failed test used to its report."""
    report = yield
    if report.failed:
        for factory in item.stash.get(_factories_key, []):
            for broker in factory.brokers:
                title = f"mosquitto {broker.name} log (last {_LOG_TAIL_LINES} lines)"
                report.sections.append((title, broker.log_tail(_LOG_TAIL_LINES)))
    return report
