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

from gwproactor.testing._procs import kill_tagged, spawn, tagged_pids
from gwproactor.testing._rabbitmq_conf import OWNER_ENV, node_environment, prepare_files

# Explicit re-exports ("as" form): defined in ._rabbitmq_install, still importable from here.
from gwproactor.testing._rabbitmq_install import INSTALL_HINT as INSTALL_HINT  # noqa: PLC0414
from gwproactor.testing._rabbitmq_install import RABBITMQ_ENV as RABBITMQ_ENV  # noqa: PLC0414
from gwproactor.testing._rabbitmq_install import (
    locate_epmd,
    locate_rabbitmq_server,
    rabbitmq_version,
)
from gwproactor.testing._server import ManagedServer

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


class RabbitMQ(ManagedServer):
    """One private RabbitMQ node with MQTT on 127.0.0.1, restartable on the same ports.

    The constructor does no I/O. Options: fixed ports (``port`` for MQTT, ``amqp_port``,
    ``dist_port``, ``epmd_port``; by default free ones, chosen when first read);
    ``extra_config``: lines appended to the generated ``rabbitmq.conf`` (sysctl format);
    ``start_timeout`` bounds :meth:`start` (a first boot takes 5 to 20 s); ``stop_timeout``
    the SIGTERM grace period of :meth:`stop`; ``binary``/``epmd`` override the lookups.

    :attr:`pid` is that of ``beam.smp``; :meth:`restart` keeps the database.
    """

    _error = RabbitMQError
    _start_error_type = RabbitMQStartError
    _kind = "RabbitMQ"
    _file_stem = "rabbitmq"
    _probe_timeout = 5.0
    _ready_poll = 0.05
    _in_use_marks = ("eaddrinuse", "address already in use")
    _in_use_tail = 60
    _logger = logger

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
        super().__init__(
            work_dir,
            name=name,
            ports={"mqtt": port, "amqp": amqp_port, "dist": dist_port, "epmd": epmd_port},
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            binary=binary,
        )
        self.extra_config = extra_config
        self._epmd_binary = epmd
        self.owner_tag = f"{name}-{secrets.token_hex(8)}"
        """Set as ``$GW_TEST_RABBITMQ_OWNER`` in every process this object spawns."""
        self._epmd: subprocess.Popen[bytes] | None = None

    # -- addresses and paths -------------------------------------------------------------

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
        return super().start()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, up to ``stop_timeout``), then :meth:`kill` whatever is
        left, epmd included. A no-op when not running. Blocking."""
        node = self._process
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
        node, self._process = self._process, None
        epmd, self._epmd = self._epmd, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        kill_tagged(self._owner_marker(), node, epmd)
        for process in (node, epmd):
            if process is not None:
                logger.debug("%s: pid %d exited with %s", self.name, process.pid, process.poll())

    def __repr__(self) -> str:
        return f"<RabbitMQ {self.name} port={self._ports['mqtt']} pid={self.pid}>"

    # -- hooks ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"node {self.node_name}"

    def _launch(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        self._wait_epmd(self._spawn_epmd(), deadline)
        self._wait_ready(self._spawn_node(), deadline)

    async def _alaunch(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        await asyncio.to_thread(self._wait_epmd, self._spawn_epmd(), deadline)
        await asyncio.to_thread(self._wait_ready, self._spawn_node(), deadline)

    def _ready_check(self) -> str | None:
        """While waiting for the node: why its epmd is no longer there, if it is not."""
        if self._epmd is not None and (code := self._epmd.poll()) is not None:
            return f"its epmd exited with code {code}"
        return None

    # -- internals -----------------------------------------------------------------------

    def _check_not_running(self) -> None:
        super()._check_not_running()
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
                epmd.wait(timeout=self._ready_poll)

    def _spawn_node(self) -> subprocess.Popen[bytes]:
        binary = self._binary or find_rabbitmq_server()
        self._mark(
            f"starting node {self.node_name}: mqtt {self.port}, amqp {self.amqp_port}, "
            f"dist {self.dist_port}"
        )
        self._process = node = self._popen([str(binary)])
        self._arm_finalizer()
        logger.debug("%s: spawned node pid %d (%s)", self.name, node.pid, self.node_name)
        return node

    def _arm_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        marker = self._owner_marker()
        self._finalizer = weakref.finalize(self, kill_tagged, marker, self._process, self._epmd)

    def _mark(self, what: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"==== test harness: {self.name}: {what} ====\n".encode())
