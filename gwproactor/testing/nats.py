"""Real NATS servers with MQTT enabled, for interoperability tests: one :class:`NatsServer` each.

NATS speaks MQTT 3.1.1 (not 5) on a listener of its own; its MQTT sessions, retained
messages and QoS 1 state live in JetStream, so the server needs JetStream, a store
directory and a ``server_name``. A :class:`NatsServer` owns one ``nats-server`` process at a
time, listening on 127.0.0.1 only:

* MQTT on :attr:`NatsServer.port` (what gateways connect to), and
* the NATS client protocol on :attr:`NatsServer.client_port` (unused by the tests, but a
  NATS server always has it: a private port, never the system instance's 4222).

No HTTP monitoring listener, no cluster, no leaf nodes. Ports are chosen once (outside the
kernel's ephemeral range, see :mod:`.ports`) and kept for the object's life, so a test can
:meth:`~NatsServer.kill` the server and :meth:`~NatsServer.restart` it on the same ports.
The JetStream store (``<work_dir>/jetstream``) is kept across restarts, as on a real
deployment: retained messages survive a kill. Everything the server writes goes to
``<work_dir>/nats.log``, one marker line per run; :meth:`~NatsServer.log_tail` returns its end.

Known MQTT limits of NATS (docs.nats.io, "MQTT"): QoS 0 and 1 only (a QoS 2 subscription is
granted QoS 1, a QoS 2 PUBLISH is refused), MQTT 3.1.1 only, retained messages and wills are
supported. Before 2.10.0 a ``.`` in a topic is refused: the server closes the connection of
a client that publishes to such a topic (from 2.10.0 it maps ``.`` to ``//`` in the NATS
subject, transparently for MQTT clients). See :func:`supports_dotted_topics`.

Thread-safety and process hygiene are those of :class:`~gwproactor.testing.mosquitto.Mosquitto`:
drive one object from one thread or loop at a time; the server runs in its own session, is
killed when its object is garbage-collected or the interpreter exits, and gets ``SIGKILL``
from the kernel if the thread that started it dies (``setpriv --pdeathsig``, where present).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import Self

from gwproactor.testing._lifecycle import AwaitableStopMixin, ContextManagerMixin
from gwproactor.testing._probe import wait_for_connack
from gwproactor.testing._procs import (
    KILL_WAIT_S,
    kill_quietly,
    log_tail,
    reap,
    spawn,
    write_private,
)
from gwproactor.testing.ports import LOOPBACK, free_listen_port, port_is_free

__all__ = (
    "DOTTED_TOPICS_VERSION",
    "NatsError",
    "NatsNotFoundError",
    "NatsServer",
    "NatsStartError",
    "find_nats_server",
    "nats_server_version",
    "supports_dotted_topics",
)

logger = logging.getLogger(__name__)

NATS_ENV = "GW_NATS_SERVER"
INSTALL_HINT = "apt-get install nats-server, or put a release binary in $GW_NATS_SERVER"
DOTTED_TOPICS_VERSION = (2, 10, 0)
"""The first nats-server release that accepts ``.`` in MQTT topics (nats-server PR 4243)."""

_NATS_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin")
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_S = 10.0
_READY_POLL_S = 0.01
# The first MQTT CONNECT makes the server create its JetStream streams: allow for that.
_PROBE_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3  # only while the ports are still our own unused choice


class NatsError(RuntimeError):
    """Root of the errors raised by this module."""


class NatsNotFoundError(NatsError):
    """No nats-server executable was found; the message says how to install one."""


class NatsStartError(NatsError):
    """The server exited or did not answer an MQTT CONNECT in time; the message has its log
    tail."""


def find_nats_server() -> Path:
    """Return the nats-server executable: ``$GW_NATS_SERVER``, else ``PATH``, else the usual
    sbin/bin directories (Debian installs it in ``/usr/sbin``).

    Raises :class:`NatsNotFoundError` saying how to install one.
    """
    override = os.environ.get(NATS_ENV)
    if override:
        if os.access(override, os.X_OK):
            return Path(override)
        raise NatsNotFoundError(f"${NATS_ENV}={override!r} is not an executable")
    found = shutil.which("nats-server") or shutil.which(
        "nats-server", path=os.pathsep.join(_NATS_DIRS)
    )
    if found is None:
        raise NatsNotFoundError(f"nats-server is not installed ({INSTALL_HINT})")
    return Path(found)


def nats_server_version(binary: Path) -> tuple[int, int, int]:
    """Return ``binary``'s version from ``nats-server --version`` (``nats-server: v2.9.10``).

    Raises :class:`NatsError` if it cannot be run or its output has no version. Blocking.
    """
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NatsError(f"cannot run {binary} --version: {e}") from e
    match = _VERSION_RE.search(done.stdout + done.stderr)
    if match is None:
        raise NatsError(f"no version in the output of {binary} --version: {done.stdout!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def supports_dotted_topics(version: tuple[int, int, int]) -> bool:
    """Whether a nats-server of ``version`` accepts MQTT topics that contain ``.``."""
    return version >= DOTTED_TOPICS_VERSION


class NatsServer(AwaitableStopMixin, ContextManagerMixin):
    """One real nats-server with MQTT on 127.0.0.1, restartable on the same ports.

    The constructor does no I/O. Options:

    * ``port`` (MQTT) / ``client_port`` (NATS protocol): fixed ports; by default free ports
      are picked when first read and kept across restarts.
    * ``max_memory_store`` / ``max_file_store``: JetStream limits (NATS size strings).
    * ``mqtt_config``: lines added inside the ``mqtt { }`` block (e.g. ``ack_wait: "10s"``,
      ``max_ack_pending: 100``); ``extra_config``: lines appended at the top level.
    * ``start_timeout`` bounds :meth:`start`; ``stop_timeout`` the SIGTERM grace period of
      :meth:`stop`; ``binary`` overrides :func:`find_nats_server`.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        name: str = "nats",
        port: int | None = None,
        client_port: int | None = None,
        max_memory_store: str = "256MB",
        max_file_store: str = "1GB",
        mqtt_config: str = "",
        extra_config: str = "",
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        binary: Path | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.name = name
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.mqtt_config = mqtt_config
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self._port = port
        self._client_port = client_port
        # Ports chosen here may be re-chosen if taken before the first start; ports given by
        # the caller, or already used by a run, are kept.
        self._ports_chosen_here = port is None and client_port is None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], NatsServer] | None = None
        self.starts = 0
        """How many times the server was started successfully."""

    host = LOOPBACK
    """The only interface the server listens on."""

    @property
    def port(self) -> int:
        """The MQTT port. Chosen (a free port) on first access, then fixed."""
        if self._port is None:
            self._port = free_listen_port(self.host, exclude=_taken(self._client_port))
        return self._port

    @property
    def client_port(self) -> int:
        """The NATS client-protocol port. Chosen on first access, then fixed."""
        if self._client_port is None:
            self._client_port = free_listen_port(self.host, exclude=_taken(self._port))
        return self._client_port

    @property
    def server_name(self) -> str:
        """The JetStream ``server_name`` (required for MQTT): ``gw_test_<mqtt port>``."""
        return f"gw_test_{self.port}"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "nats.conf"

    @property
    def log_path(self) -> Path:
        """The server's log, appended to by every run."""
        return self.work_dir / "nats.log"

    @property
    def store_dir(self) -> Path:
        """The JetStream store directory, kept across restarts."""
        return self.work_dir / "jetstream"

    @property
    def running(self) -> bool:
        """Whether the server process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    def version(self) -> tuple[int, int, int]:
        """The server's version (runs ``nats-server --version``; blocking)."""
        return nats_server_version(self._binary or find_nats_server())

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of :attr:`log_path` (``""`` if there is no log yet)."""
        return log_tail(self.log_path, lines)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server; return once it answers an MQTT CONNECT with a CONNACK.

        A bare TCP accept is not enough: the MQTT listener opens before JetStream has
        created the streams that MQTT sessions need, and the CONNACK comes only after
        that. The ports are checked free just before spawning, so that the CONNACK cannot
        come from another process; ports this object chose and never used are re-chosen if
        taken meanwhile. Raises :class:`NatsStartError` with the log tail if the server
        exits early or is not ready within ``start_timeout`` (it is then killed),
        :class:`NatsError` if already running, :class:`NatsNotFoundError` without a binary.
        Blocking; returns ``self``.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            process = self._spawn()
            try:
                self._wait_ready(process, time.monotonic() + self.start_timeout)
            except NatsStartError:
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
        """Awaitable :meth:`start` (the readiness wait runs in a worker thread). If cancelled
        while waiting, the server is killed before ``CancelledError`` propagates."""
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            process = self._spawn()
            deadline = time.monotonic() + self.start_timeout
            try:
                await asyncio.to_thread(self._wait_ready, process, deadline)
            except NatsStartError:
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
        """Stop gracefully: SIGTERM, wait ``stop_timeout``, then SIGKILL and wait. A no-op
        when not running. Blocking; never raises for a process that is already gone."""
        self._terminate(signal.SIGTERM, self.stop_timeout)

    def kill(self) -> None:
        """SIGKILL the server (clients see their connections reset) and wait for it."""
        self._terminate(signal.SIGKILL, KILL_WAIT_S)

    def restart(self, *, kill: bool = False) -> Self:
        """:meth:`stop` (or :meth:`kill`) if running, then :meth:`start` on the same ports
        with the same JetStream store. Raises like :meth:`start`."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"<NatsServer {self.name} port={self._port} pid={self.pid}>"

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = self._binary or find_nats_server()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(exist_ok=True)
        write_private(self.config_path, self._config())
        argv = [str(binary), "-c", str(self.config_path)]
        ports = f"mqtt port {self.port}, client port {self.client_port}"
        process = spawn(
            argv,
            log_path=self.log_path,
            cwd=self.work_dir,
            marker=f"starting {self.name} on {ports}",
        )
        self._process = process
        self._finalizer = weakref.finalize(self, kill_quietly, process)
        logger.debug("%s: spawned pid %d (%s)", self.name, process.pid, ports)
        return process

    def _config(self) -> str:
        mqtt_extra = [f"  {line}" for line in self.mqtt_config.splitlines()]
        lines = [
            f"# generated by gwproactor.testing.nats for {self.name}",
            f'server_name: "{self.server_name}"',
            f'listen: "{self.host}:{self.client_port}"',
            "# no http/https monitoring listener, no cluster, no leaf nodes",
            "logtime: true",
            "debug: false",
            "trace: false",
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
            f"  max_memory_store: {self.max_memory_store}",
            f"  max_file_store: {self.max_file_store}",
            "}",
            "mqtt {",
            f'  listen: "{self.host}:{self.port}"',
            *mqtt_extra,
            "}",
        ]
        if self.extra_config:
            lines += ["# extra_config", self.extra_config]
        return "\n".join(lines) + "\n"

    def _check_not_running(self) -> None:
        if self.running:
            raise NatsError(f"{self!r} is already running")

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until the server answers an MQTT CONNECT on :attr:`port`; see :meth:`start`."""
        wait_for_connack(
            process,
            self.host,
            self.port,
            deadline,
            start_timeout=self.start_timeout,
            probe_timeout=_PROBE_TIMEOUT_S,
            poll_interval=_READY_POLL_S,
            exited_before="before accepting MQTT",
            error=self._start_error,
        )

    def _start_error(self, what: str) -> NatsStartError:
        return NatsStartError(
            f"nats-server {self.name!r} (mqtt port {self._port}) {what}; "
            f"log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def _ports_bindable(self, attempt: int) -> bool:
        """Before spawning: True if both ports are free; False after re-choosing them.
        Raises :class:`NatsStartError` when a port is busy and may not be re-chosen."""
        busy = [p for p in (self.port, self.client_port) if not port_is_free(p, self.host)]
        if not busy:
            return True
        if not self._may_rechoose_ports(attempt):
            raise NatsStartError(
                f"nats-server {self.name!r}: port(s) {busy} on {self.host} already in use"
            )
        logger.warning("%s: ports %s were taken meanwhile, choosing others", self.name, busy)
        self._port = self._client_port = None
        return False

    def _retry_on_other_ports(self, attempt: int) -> bool:
        if not self._may_rechoose_ports(attempt):
            return False
        if "address already in use" not in self.log_tail(10).lower():
            return False
        logger.warning("%s: port %s was taken meanwhile, choosing others", self.name, self._port)
        self._port = self._client_port = None
        return True

    def _may_rechoose_ports(self, attempt: int) -> bool:
        return self._ports_chosen_here and self.starts == 0 and attempt < _START_ATTEMPTS

    def _started(self) -> None:
        self.starts += 1
        logger.info("%s: ready on mqtt port %s (pid %s)", self.name, self._port, self.pid)

    def _terminate(self, sig: signal.Signals, grace: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        reap(process, sig, grace)
        logger.debug("%s: pid %d exited with %s", self.name, process.pid, process.returncode)


def _taken(*ports: int | None) -> frozenset[int]:
    return frozenset(p for p in ports if p is not None)
