"""Private RabbitMQ nodes with the MQTT plugin for interoperability tests: one :class:`RabbitMQ`
each.

A :class:`RabbitMQ` owns one Erlang node (``beam.smp``) and its own ``epmd`` at a time, on
127.0.0.1 and separate from any system node: its own node name (``gw<mqtt port>@localhost``),
Erlang cookie (in a private ``HOME``), ports, database, logs, configuration and plugins
(``rabbitmq_mqtt`` only; no management). Its ports are chosen once, outside the kernel's
ephemeral range (see :mod:`.ports`), and kept across restarts: :attr:`RabbitMQ.port` (MQTT),
:attr:`~RabbitMQ.amqp_port`, :attr:`~RabbitMQ.dist_port` (Erlang distribution) and
:attr:`~RabbitMQ.epmd_port`. The database (``<work_dir>/mnesia``) is kept too: a restart is
the same node coming back. Every boot takes 5 to 20 s, 3 to 6 s of which the MQTT plugin
spends waiting for cluster peers. Both processes write to ``<work_dir>/rabbitmq.log``, one
marker line per run; :meth:`~RabbitMQ.log_tail` returns its end.

Processes. The node runs in a session of its own, and the start script is made to ``exec``
the VM (``RUNNING_UNDER_SYSTEMD=true`` selects that branch of ``rabbitmq-server``), so the
spawned pid *is* ``beam.smp``: SIGTERM reaches the VM itself and ``setpriv --pdeathsig``
(where present) survives the ``exec`` chain. The VM's helpers (``erl_child_setup`` and what
it runs) live in other sessions, and an ``epmd -daemon`` would daemonize away from us: the
node is therefore started with ``-start_epmd false`` against the ``epmd`` started here, and
every process spawned here carries an environment tag (:attr:`RabbitMQ.owner_tag`) by which
:meth:`~RabbitMQ.kill` finds and kills whatever of ours is left, never touching the system
node. :meth:`~RabbitMQ.leftover_pids` lists them (empty after :meth:`~RabbitMQ.kill`).

MQTT support of the installed version (3.10): MQTT 3.1.1 (MQTT 5 from 3.13), QoS 0 and 1,
retained messages (delivered only to subscriptions without wildcards), wills. RabbitMQ maps
topic levels to AMQP routing-key words, ``/`` to ``.`` on the way in and ``.`` to ``/`` on the
way out, so a ``.`` inside an MQTT topic level becomes a level separator: a message published
on ``a/b.c`` is routed as ``a.b.c`` and delivered as ``a/b/c`` (documented, "MQTT topics that
have dots in them won't work as expected"; rabbitmq-server issue 2559).

Thread-safety: drive one object from one thread or loop at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Self

from gwproactor.testing._lifecycle import AwaitableStopMixin
from gwproactor.testing._probe import wait_for_connack
from gwproactor.testing._procs import kill_tagged, log_tail, spawn, tagged_pids
from gwproactor.testing._rabbitmq_conf import OWNER_ENV, node_environment, prepare_files

# Explicit re-exports ("as" form): defined in ._rabbitmq_install, still importable from here.
from gwproactor.testing._rabbitmq_install import INSTALL_HINT as INSTALL_HINT  # noqa: PLC0414
from gwproactor.testing._rabbitmq_install import RABBITMQ_ENV as RABBITMQ_ENV  # noqa: PLC0414
from gwproactor.testing._rabbitmq_install import (
    locate_epmd,
    locate_rabbitmq_server,
    rabbitmq_version,
)
from gwproactor.testing.ports import LOOPBACK, free_listen_port, port_is_free

__all__ = (
    "MQTT5_VERSION",
    "RabbitMQ",
    "RabbitMQError",
    "RabbitMQNotFoundError",
    "RabbitMQStartError",
    "find_epmd",
    "find_rabbitmq_server",
    "rabbitmq_version",
)

logger = logging.getLogger(__name__)

MQTT5_VERSION = (3, 13, 0)
"""The first RabbitMQ release whose MQTT plugin speaks MQTT 5."""

_READY_POLL_S = 0.05
_PROBE_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3  # only while the ports are still our own unused choice
_PORT_IN_USE = ("eaddrinuse", "address already in use")


class RabbitMQError(RuntimeError):
    """Root of the errors raised by this module."""


class RabbitMQNotFoundError(RabbitMQError):
    """RabbitMQ (or Erlang's epmd) is not installed; the message says how to install it."""


class RabbitMQStartError(RabbitMQError):
    """The node exited or did not answer an MQTT CONNECT in time; the message has its log
    tail."""


def find_rabbitmq_server() -> Path:
    """Return the ``rabbitmq-server`` start script to run (not a wrapper that changes user).

    Looks at ``$GW_RABBITMQ_SERVER``, then the real script of the Debian package, then
    ``PATH`` and the usual sbin directories. Raises :class:`RabbitMQNotFoundError`.
    """
    return locate_rabbitmq_server(RabbitMQNotFoundError)


def find_epmd() -> Path:
    """Return Erlang's ``epmd`` (on ``PATH``, else in an ``erts-*/bin`` of the Erlang root).

    Raises :class:`RabbitMQNotFoundError`.
    """
    return locate_epmd(RabbitMQNotFoundError)


class RabbitMQ(AwaitableStopMixin):
    """One private RabbitMQ node with MQTT on 127.0.0.1, restartable on the same ports.

    The constructor does no I/O. Options: fixed ports (``port`` for MQTT, ``amqp_port``,
    ``dist_port``, ``epmd_port``; by default free ones, chosen when first read);
    ``extra_config``: lines appended to the generated ``rabbitmq.conf`` (sysctl format);
    ``start_timeout`` bounds :meth:`start` (a first boot takes 5 to 20 s); ``stop_timeout``
    the SIGTERM grace period of :meth:`stop`; ``binary``/``epmd`` override the lookups.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        name: str = "rabbitmq",
        port: int | None = None,
        amqp_port: int | None = None,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        extra_config: str = "",
        start_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        binary: Path | None = None,
        epmd: Path | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.name = name
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self._epmd_binary = epmd
        self._ports: dict[str, int | None] = {
            "mqtt": port,
            "amqp": amqp_port,
            "dist": dist_port,
            "epmd": epmd_port,
        }
        self._ports_chosen_here = all(p is None for p in self._ports.values())
        self.owner_tag = f"{name}-{secrets.token_hex(8)}"
        """Set as ``$GW_TEST_RABBITMQ_OWNER`` in every process this object spawns."""
        self._node: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., RabbitMQ] | None = None
        self.starts = 0
        """How many times the node was started successfully."""

    host = LOOPBACK
    """The only interface the node listens on."""

    # -- addresses and paths -------------------------------------------------------------

    def _port(self, role: str) -> int:
        port = self._ports[role]
        if port is None:
            taken = frozenset(p for p in self._ports.values() if p is not None)
            port = self._ports[role] = free_listen_port(self.host, exclude=taken)
        return port

    @property
    def port(self) -> int:
        """The MQTT port. Chosen (a free port) on first access, then fixed."""
        return self._port("mqtt")

    @property
    def amqp_port(self) -> int:
        return self._port("amqp")

    @property
    def dist_port(self) -> int:
        return self._port("dist")

    @property
    def epmd_port(self) -> int:
        return self._port("epmd")

    @property
    def node_name(self) -> str:
        return f"gw{self.port}@localhost"

    @property
    def home_dir(self) -> Path:
        """``HOME`` of the node: holds its Erlang cookie, so the system node's is not used."""
        return self.work_dir / "home"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "rabbitmq.conf"

    @property
    def log_path(self) -> Path:
        """The node's and its epmd's output, appended to by every run."""
        return self.work_dir / "rabbitmq.log"

    @property
    def running(self) -> bool:
        """Whether the node's VM exists and has not exited."""
        return self._node is not None and self._node.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of ``beam.smp`` while :attr:`running`."""
        return self._node.pid if self._node is not None and self.running else None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of :attr:`log_path` (``""`` if there is no log yet)."""
        return log_tail(self.log_path, lines)

    def leftover_pids(self) -> list[int]:
        """Live processes (not zombies) carrying this object's :attr:`owner_tag` (Linux
        ``/proc``; empty elsewhere)."""
        return list(tagged_pids(self._owner_marker()))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start epmd and the node; return once the node answers an MQTT CONNECT.

        The CONNACK proves the MQTT plugin runs (it opens its listener late in the boot).
        The ports are checked free just before spawning; ports this object chose and never
        used are re-chosen if taken meanwhile. Raises :class:`RabbitMQStartError` with the
        log tail if a process exits early or the node is not ready within
        ``start_timeout`` (everything is then killed), :class:`RabbitMQError` if already
        running, :class:`RabbitMQNotFoundError` without RabbitMQ or epmd. Blocking.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            deadline = time.monotonic() + self.start_timeout
            try:
                self._wait_epmd(self._spawn_epmd(), deadline)
                self._wait_ready(self._spawn_node(), deadline)
            except RabbitMQStartError:
                self.kill()
                if not self._retry_on_other_ports(attempt):
                    raise
            except BaseException:
                self.kill()
                raise
            else:
                self._started()
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    async def astart(self) -> Self:
        """Awaitable :meth:`start`: processes are spawned on the loop's thread (see
        ``--pdeathsig``), the waits for readiness run in worker threads. If cancelled, what
        was started is killed before ``CancelledError`` propagates."""
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            deadline = time.monotonic() + self.start_timeout
            try:
                await asyncio.to_thread(self._wait_epmd, self._spawn_epmd(), deadline)
                await asyncio.to_thread(self._wait_ready, self._spawn_node(), deadline)
            except RabbitMQStartError:
                await self.akill()
                if not self._retry_on_other_ports(attempt):
                    raise
            except BaseException:
                self.kill()  # also on cancellation: no await that could be cancelled again
                raise
            else:
                self._started()
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, up to ``stop_timeout``), then :meth:`kill` whatever is
        left, epmd included. A no-op when not running. Blocking."""
        node = self._node
        if node is not None and node.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                node.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=self.stop_timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the node's process group, epmd and every other process carrying
        :attr:`owner_tag`, and wait for them. Nothing is saved; clients see resets. A no-op
        when nothing runs. Blocking."""
        node, self._node = self._node, None
        epmd, self._epmd = self._epmd, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        kill_tagged(self._owner_marker(), node, epmd)
        for process in (node, epmd):
            if process is not None:
                logger.debug("%s: pid %d exited with %s", self.name, process.pid, process.poll())

    def restart(self, *, kill: bool = False) -> Self:
        """:meth:`stop` (or :meth:`kill`), then :meth:`start` on the same ports with the
        same database. Raises like :meth:`start`."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"<RabbitMQ {self.name} port={self._ports['mqtt']} pid={self.pid}>"

    # -- internals -----------------------------------------------------------------------

    def _check_not_running(self) -> None:
        if self.running:
            raise RabbitMQError(f"{self!r} is already running")
        if self._epmd is not None:
            self.kill()  # the node died by itself: clear what is left of that run

    def _owner_marker(self) -> bytes:
        """The environment entry that tags every process spawned for this node."""
        return f"{OWNER_ENV}={self.owner_tag}".encode()

    def _popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        env = node_environment(self)
        return spawn(argv, log_path=self.log_path, cwd=self.work_dir, env=env)

    def _spawn_epmd(self) -> subprocess.Popen[bytes]:
        """Start this node's epmd, in the foreground (it stays our child, in our reach)."""
        binary = self._epmd_binary or find_epmd()
        prepare_files(self)
        self._mark(f"starting epmd on port {self.epmd_port}")
        argv = [str(binary), "-port", str(self.epmd_port), "-address", self.host]
        self._epmd = epmd = self._popen(argv)
        self._arm_finalizer()
        return epmd

    def _wait_epmd(self, epmd: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until epmd accepts connections (the node registers with it at boot)."""
        while True:
            if (code := epmd.poll()) is not None:
                raise self._start_error(f"epmd exited with code {code}")
            if time.monotonic() >= deadline:
                raise self._start_error(f"epmd did not listen on port {self.epmd_port}")
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.epmd_port), timeout=1.0).close()
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                epmd.wait(timeout=_READY_POLL_S)

    def _spawn_node(self) -> subprocess.Popen[bytes]:
        binary = self._binary or find_rabbitmq_server()
        self._mark(
            f"starting node {self.node_name}: mqtt {self.port}, amqp {self.amqp_port}, "
            f"dist {self.dist_port}"
        )
        self._node = node = self._popen([str(binary)])
        self._arm_finalizer()
        logger.debug("%s: spawned node pid %d (%s)", self.name, node.pid, self.node_name)
        return node

    def _arm_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        marker = self._owner_marker()
        self._finalizer = weakref.finalize(self, kill_tagged, marker, self._node, self._epmd)

    def _mark(self, what: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"==== test harness: {self.name}: {what} ====\n".encode())

    def _wait_ready(self, node: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until the node answers an MQTT CONNECT on :attr:`port`."""
        wait_for_connack(
            node,
            self.host,
            self.port,
            deadline,
            start_timeout=self.start_timeout,
            probe_timeout=_PROBE_TIMEOUT_S,
            poll_interval=_READY_POLL_S,
            exited_before="before accepting MQTT",
            error=self._start_error,
            check=self._epmd_gone,
        )

    def _epmd_gone(self) -> str | None:
        """While waiting for the node: why its epmd is no longer there, if it is not."""
        if self._epmd is not None and (code := self._epmd.poll()) is not None:
            return f"its epmd exited with code {code}"
        return None

    def _start_error(self, what: str) -> RabbitMQStartError:
        return RabbitMQStartError(
            f"RabbitMQ {self.name!r} (node {self.node_name}) {what}; "
            f"log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def _ports_bindable(self, attempt: int) -> bool:
        """Before spawning: True if all four ports are free; False after re-choosing them.
        Raises :class:`RabbitMQStartError` when a port is busy and may not be re-chosen."""
        ports = [self.port, self.amqp_port, self.dist_port, self.epmd_port]
        busy = [port for port in ports if not port_is_free(port, self.host)]
        if not busy:
            return True
        if not self._may_rechoose_ports(attempt):
            raise RabbitMQStartError(
                f"RabbitMQ {self.name!r}: port(s) {busy} on {self.host} already in use"
            )
        logger.warning("%s: ports %s were taken meanwhile, choosing others", self.name, busy)
        self._ports = dict.fromkeys(self._ports)
        return False

    def _retry_on_other_ports(self, attempt: int) -> bool:
        if not self._may_rechoose_ports(attempt):
            return False
        if not any(mark in self.log_tail(60).lower() for mark in _PORT_IN_USE):
            return False
        logger.warning("%s: a port was taken meanwhile, choosing others", self.name)
        self._ports = dict.fromkeys(self._ports)
        return True

    def _may_rechoose_ports(self, attempt: int) -> bool:
        return self._ports_chosen_here and self.starts == 0 and attempt < _START_ATTEMPTS

    def _started(self) -> None:
        self.starts += 1
        logger.info("%s: node %s ready (pid %s)", self.name, self.node_name, self.pid)
