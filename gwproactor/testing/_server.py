"""What the broker managers (:mod:`.mosquitto`, :mod:`.nats`, :mod:`.rabbitmq`) have in common:
their state, their ports, the start loop that re-chooses ports lost to another process, the
MQTT readiness wait and their errors.

* :class:`ManagedServer` is the base of all three. A subclass says how it launches (``_launch``
  and ``_alaunch``: spawn and wait until ready), how it stops (``stop``, ``kill``) and fills
  in the small hooks listed in the class docstring.
* :class:`SingleProcessServer` adds everything for a server that is one process started as
  ``<binary> -c <config_path>`` (mosquitto, nats-server): spawning, stopping and killing.

Package-private: the managers inherit these, nothing else should.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import ClassVar, Self

from gwproactor.testing._lifecycle import AwaitableStopMixin
from gwproactor.testing._probe import wait_for_connack
from gwproactor.testing._procs import KILL_WAIT_S, kill_quietly, log_tail, reap, spawn
from gwproactor.testing.ports import LOOPBACK, free_listen_port, port_is_free

__all__ = ("ManagedServer", "SingleProcessServer")

_START_ATTEMPTS = 3  # only while the ports are still our own unused choice


class ManagedServer(AwaitableStopMixin, abc.ABC):
    """A private MQTT server on 127.0.0.1 run by the test harness, restartable on the same ports.

    Holds the state every manager has (``work_dir``, ``name``, the timeouts, the binary
    override, the main process and its finalizer, :attr:`starts`), its ports by role (the
    MQTT one is ``"mqtt"``; each is chosen when first read, then kept) and the shared
    lifecycle: :meth:`start` / :meth:`astart` with the retry on other ports, :meth:`restart`.

    Hooks for subclasses:

    * class attributes: ``_error`` (the module's root error, raised when already running),
      ``_start_error_type`` (its start error), ``_kind`` (the server's name in messages),
      ``_busy_note`` (appended to the "already in use" message), ``_file_stem`` (of the log
      and configuration files), ``_probe_timeout``, ``_ready_poll`` and ``_exited_before``
      (for the readiness wait), ``_in_use_marks`` and ``_in_use_tail`` (how a lost port shows
      in the log), ``_logger``;
    * ``_where()``: the parenthesis of the label of messages (``port 1883``);
    * ``_launch()`` / ``_alaunch()``: spawn and wait until ready (on an error, :meth:`start`
      calls :meth:`kill`); ``stop()`` and ``kill()``;
    * optionally ``_listen_ports()`` (the ports checked free before spawning; by default all
      roles) and ``_ready_check()`` (a problem that ends the readiness wait early).
    """

    _error: ClassVar[type[Exception]]
    _start_error_type: ClassVar[type[Exception]]
    _kind: ClassVar[str]
    _busy_note: ClassVar[str] = ""
    _file_stem: ClassVar[str]
    _probe_timeout: ClassVar[float]
    _ready_poll: ClassVar[float]
    _exited_before: ClassVar[str] = "before accepting MQTT"
    _in_use_marks: ClassVar[tuple[str, ...]] = ("address already in use",)
    _in_use_tail: ClassVar[int] = 10
    _logger: ClassVar[logging.Logger] = logging.getLogger("gwproactor.testing")

    def __init__(
        self,
        work_dir: Path,
        *,
        name: str,
        ports: dict[str, int | None],
        start_timeout: float,
        stop_timeout: float,
        binary: Path | None,
    ) -> None:
        self.work_dir = work_dir
        self.name = name
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self._ports = ports
        # Ports chosen here may be re-chosen if someone else grabbed them before the first
        # start; ports given by the caller, or already used by a run, are kept.
        self._ports_chosen_here = all(p is None for p in ports.values())
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., ManagedServer] | None = None
        self.starts = 0
        """How many times the server was started successfully."""

    host = LOOPBACK
    """The only interface the server listens on."""

    # -- addresses and paths -------------------------------------------------------------

    def _port(self, role: str) -> int:
        """The port of ``role``: a free one (not one of the others) chosen on first access."""
        port = self._ports[role]
        if port is None:
            taken = frozenset(p for p in self._ports.values() if p is not None)
            port = self._ports[role] = free_listen_port(self.host, exclude=taken)
        return port

    @property
    def port(self) -> int:
        """The MQTT port (the plain one, without TLS). Chosen (a free port) on first access,
        then fixed."""
        return self._port("mqtt")

    @property
    def config_path(self) -> Path:
        """The generated configuration file (rewritten by every start)."""
        return self.work_dir / f"{self._file_stem}.conf"

    @property
    def log_path(self) -> Path:
        """The server's log: everything its processes write (stdout and stderr), appended to
        by every run."""
        return self.work_dir / f"{self._file_stem}.log"

    # -- process state -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while :attr:`running`, else ``None``."""
        return self._process.pid if self._process is not None and self.running else None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of :attr:`log_path` (``""`` if there is no log yet)."""
        return log_tail(self.log_path, lines)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server; return once it answers an MQTT CONNECT on :attr:`port`.

        The ports are checked free just before spawning, so that the CONNACK cannot come
        from another process; ports this object chose itself and never used are re-chosen if
        they were taken meanwhile. Raises the module's start error with the log tail if the
        server exits early or is not ready within ``start_timeout`` (it is then killed), its
        root error if already running. Blocking; returns ``self``.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            try:
                self._launch()
            except self._start_error_type:
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
        """Awaitable :meth:`start`: processes are spawned on the loop's thread (that is the
        thread ``--pdeathsig`` ties them to), the waits for readiness run in worker threads.

        Same contract as :meth:`start`. If cancelled, whatever was started is killed before
        ``CancelledError`` propagates.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            try:
                await self._alaunch()
            except self._start_error_type:
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

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop gracefully (SIGTERM first); a no-op when not running. Blocking."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL the server and wait for it; a no-op when not running. Blocking."""

    def restart(self, *, kill: bool = False) -> Self:
        """:meth:`stop` (or :meth:`kill`) if running, then :meth:`start` on the same ports.
        Raises like :meth:`start`."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    # -- hooks ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _where(self) -> str:
        """What the label of messages says in parentheses after the name (``port 1883``)."""

    @abc.abstractmethod
    def _launch(self) -> None:
        """Spawn what a run needs and block until it is ready (see :meth:`start`)."""

    @abc.abstractmethod
    async def _alaunch(self) -> None:
        """Spawn what a run needs on this thread; await readiness in worker threads."""

    def _listen_ports(self) -> list[int]:
        """The ports the server listens on, checked free before spawning."""
        return [self._port(role) for role in self._ports]

    def _ready_check(self) -> str | None:
        """While waiting for readiness: a problem that makes waiting longer pointless."""
        return None

    # -- internals -----------------------------------------------------------------------

    def _label(self) -> str:
        return f"{self._kind} {self.name!r} ({self._where()})"

    def _check_not_running(self) -> None:
        if self.running:
            raise self._error(f"{self!r} is already running")

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until ``process`` answers an MQTT CONNECT on :attr:`port`; see :meth:`start`."""
        wait_for_connack(
            process,
            self.host,
            self.port,
            deadline,
            start_timeout=self.start_timeout,
            probe_timeout=self._probe_timeout,
            poll_interval=self._ready_poll,
            exited_before=self._exited_before,
            error=self._start_error,
            check=self._ready_check,
        )

    def _start_error(self, what: str) -> Exception:
        return self._start_error_type(
            f"{self._label()} {what}; log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def _ports_bindable(self, attempt: int) -> bool:
        """Before spawning: True if the listener ports are free; False after re-choosing them.

        Raises the start error when a port is busy and may not be re-chosen.
        """
        busy = [port for port in self._listen_ports() if not port_is_free(port, self.host)]
        if not busy:
            return True
        if not self._may_rechoose_ports(attempt):
            raise self._start_error_type(
                f"{self._kind} {self.name!r}: port(s) {busy} on {self.host} already in use"
                f"{self._busy_note}"
            )
        self._logger.warning("%s: ports %s were taken meanwhile, choosing others", self.name, busy)
        self._ports = dict.fromkeys(self._ports)
        return False

    def _retry_on_other_ports(self, attempt: int) -> bool:
        """After a failed start: re-choose ports and return True if worth another attempt."""
        if not self._may_rechoose_ports(attempt):
            return False
        tail = self.log_tail(self._in_use_tail).lower()
        if not any(mark in tail for mark in self._in_use_marks):
            return False
        ports = [p for p in self._ports.values() if p is not None]
        self._logger.warning(
            "%s: one of ports %s was taken meanwhile, choosing others", self.name, ports
        )
        self._ports = dict.fromkeys(self._ports)
        return True

    def _may_rechoose_ports(self, attempt: int) -> bool:
        return self._ports_chosen_here and self.starts == 0 and attempt < _START_ATTEMPTS

    def _started(self) -> None:
        self.starts += 1
        self._logger.info("%s ready (pid %s)", self._label(), self.pid)


class SingleProcessServer(ManagedServer):
    """A :class:`ManagedServer` that is one process, ``<binary> -c <config_path>``.

    Hooks: ``_find_binary()`` (used without a ``binary`` override), ``_write_files()`` (the
    configuration and whatever else the process reads; ``work_dir`` exists then) and
    ``_ports_text()`` (the ports, for the log's marker line).
    """

    @abc.abstractmethod
    def _find_binary(self) -> Path:
        """The executable to run when none was given."""

    @abc.abstractmethod
    def _write_files(self) -> None:
        """Write :attr:`config_path` and anything else the process reads, into ``work_dir``."""

    @abc.abstractmethod
    def _ports_text(self) -> str:
        """The listener ports, as the log's marker line states them."""

    def stop(self) -> None:
        """Stop the server gracefully: SIGTERM, wait ``stop_timeout``, then SIGKILL and wait.

        A no-op when not running (a process that died by itself is reaped). Blocking; never
        raises for a process that is already gone.
        """
        self._terminate(signal.SIGTERM, self.stop_timeout)

    def kill(self) -> None:
        """Kill the server with SIGKILL (no goodbye to clients, they see their connections
        reset; nothing saved) and wait for it. A no-op when not running. Blocking.
        """
        self._terminate(signal.SIGKILL, KILL_WAIT_S)

    def _launch(self) -> None:
        process = self._spawn()
        self._wait_ready(process, time.monotonic() + self.start_timeout)

    async def _alaunch(self) -> None:
        process = self._spawn()
        deadline = time.monotonic() + self.start_timeout
        await asyncio.to_thread(self._wait_ready, process, deadline)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Write the configuration and start the process (does not wait for readiness)."""
        self._check_not_running()
        binary = self._binary or self._find_binary()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        argv = [str(binary), "-c", str(self.config_path)]
        ports = self._ports_text()
        process = spawn(
            argv,
            log_path=self.log_path,
            cwd=self.work_dir,
            marker=f"starting {self.name} on {ports}",
        )
        self._process = process
        self._finalizer = weakref.finalize(self, kill_quietly, process)
        self._logger.debug("%s: spawned pid %d (%s)", self.name, process.pid, ports)
        return process

    def _terminate(self, sig: signal.Signals, grace: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        reap(process, sig, grace)
        self._logger.debug("%s: pid %d exited with %s", self.name, process.pid, process.returncode)
