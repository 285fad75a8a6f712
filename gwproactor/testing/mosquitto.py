"""Real mosquitto brokers for integration tests: one :class:`Mosquitto` per process.

A :class:`Mosquitto` owns one broker process at a time, listening on 127.0.0.1 only:

* a plain MQTT listener on :attr:`Mosquitto.port`, and
* with ``tls=`` a second listener on :attr:`Mosquitto.tls_port` that requires a client
  certificate signed by the test CA.

Ports are chosen once (outside the kernel's ephemeral range, see :mod:`.ports`) and kept for
the object's life, so a test can :meth:`~Mosquitto.kill` its broker and
:meth:`~Mosquitto.restart` "the same" broker on the same address. Everything the broker
writes (its log and any startup error) goes to ``<work_dir>/mosquitto.log``; a marker line
separates the runs; :meth:`~Mosquitto.log_tail` returns the end of it.

Thread-safety: a :class:`Mosquitto` is not thread-safe; drive each from one thread (or one
event loop) at a time. Process hygiene: brokers run in their own session (a Ctrl-C in the
terminal does not reach them before teardown does), are killed when their object is
garbage-collected or the interpreter exits, and where util-linux ``setpriv`` exists they get
``SIGKILL`` from the kernel if the *thread* that started them dies (``PR_SET_PDEATHSIG``), so
a hard-killed pytest leaves no orphan brokers. Start brokers from a long-lived thread (the
main thread or the event loop's), not from a short-lived worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from gwproactor.testing._lifecycle import AwaitableStopMixin, ContextManagerMixin
from gwproactor.testing._mosquitto_conf import (
    MosquittoOptions,
    hash_password,
    render_config,
    write_password_file,
)
from gwproactor.testing._probe import wait_for_connack
from gwproactor.testing._procs import (
    KILL_WAIT_S,
    kill_quietly,
    log_tail,
    reap,
    spawn,
    write_private,
)
from gwproactor.testing.certs import TlsMaterial
from gwproactor.testing.ports import LOOPBACK, free_listen_port, port_is_free

__all__ = (
    "BOOTSTRAP_HINT",
    "Mosquitto",
    "MosquittoError",
    "MosquittoNotFoundError",
    "MosquittoOptions",
    "MosquittoStartError",
    "find_mosquitto",
    "hash_password",
    "write_password_file",
)

logger = logging.getLogger(__name__)

BOOTSTRAP_HINT = "run scripts/_bootstrap.sh (it installs mosquitto and openssl with apt-get)"
MOSQUITTO_ENV = "GW_MOSQUITTO"
_MOSQUITTO_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/bin")
_READY_POLL_S = 0.01
_PROBE_TIMEOUT_S = 1.0
_START_ATTEMPTS = 3  # only while the ports are still our own unused choice


class MosquittoError(RuntimeError):
    """Root of the errors raised by this module."""


class MosquittoNotFoundError(MosquittoError):
    """No mosquitto executable was found; the message says how to install one."""


class MosquittoStartError(MosquittoError):
    """The broker exited or did not accept connections in time; the message has its log tail."""


def find_mosquitto() -> Path:
    """Return the mosquitto executable to run.

    Looks at ``$GW_MOSQUITTO``, then ``PATH``, then the usual sbin directories (Debian installs
    the broker in ``/usr/sbin``, which is not on an ordinary user's ``PATH``).
    Raises :class:`MosquittoNotFoundError` saying to run ``scripts/_bootstrap.sh``.
    """
    override = os.environ.get(MOSQUITTO_ENV)
    if override:
        if os.access(override, os.X_OK):
            return Path(override)
        raise MosquittoNotFoundError(
            f"${MOSQUITTO_ENV}={override!r} is not an executable; unset it, or {BOOTSTRAP_HINT}"
        )
    found = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path=os.pathsep.join(_MOSQUITTO_DIRS)
    )
    if found is None:
        raise MosquittoNotFoundError(
            "the mosquitto broker is not installed (not on PATH nor in "
            f"{', '.join(_MOSQUITTO_DIRS)}); integration tests need a real broker: {BOOTSTRAP_HINT}"
        )
    return Path(found)


class Mosquitto(AwaitableStopMixin, ContextManagerMixin):
    """One real mosquitto broker process on 127.0.0.1, restartable on the same ports.

    The constructor does no I/O. Options:

    * ``port`` / ``tls_port``: fixed ports; by default free ports are picked when first
      needed (:attr:`port` may be read before :meth:`start`, e.g. to point a client at a
      broker that is not up yet) and kept across restarts.
    * ``tls``: adds the TLS listener using ``tls``'s CA and server certificate. With
      ``tls_require_certificate`` (default) clients without a certificate signed by that CA
      are refused; ``tls_identity_as_username`` makes the certificate's CN the username.
    * ``users`` (name -> password, hashed into a password file here) or ``password_file``
      (an existing file). ``allow_anonymous`` defaults to ``True`` without either, ``False``
      with one of them.
    * ``acl``: the content of an ACL file (mosquitto's ``acl_file`` syntax).
    * ``max_queued_messages``: per-client queue limit for QoS>0 messages while offline.
    * ``persistence``: keep retained messages, persistent sessions and their queued messages
      in ``<work_dir>/mosquitto.db``. It is written when the broker exits on SIGTERM
      (:meth:`stop`), not on :meth:`kill`; add ``autosave_interval``/``autosave_on_changes``
      to ``extra_config`` to save while running.
    * ``log_types``: mosquitto ``log_type`` values, ``("all",)`` by default.
    * ``extra_config``: appended verbatim to the end of the generated configuration, so
      listener-scoped options in it apply to the last listener (TLS if any, else plain);
      it may also declare further listeners.
    * ``start_timeout`` bounds :meth:`start`; ``stop_timeout`` bounds the SIGTERM grace
      period of :meth:`stop`. ``binary`` overrides :func:`find_mosquitto`.

    MQTT 3.1.1 and 5 clients are both accepted; nothing needs configuring for either.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        name: str = "mosquitto",
        port: int | None = None,
        tls: TlsMaterial | None = None,
        tls_port: int | None = None,
        tls_require_certificate: bool = True,
        tls_identity_as_username: bool = False,
        users: Mapping[str, str] | None = None,
        password_file: Path | None = None,
        acl: str | None = None,
        allow_anonymous: bool | None = None,
        max_queued_messages: int | None = None,
        persistence: bool = False,
        log_types: tuple[str, ...] = ("all",),
        extra_config: str = "",
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        binary: Path | None = None,
    ) -> None:
        if users is not None and password_file is not None:
            raise ValueError("give either users or password_file, not both")
        if tls_port is not None and tls is None:
            raise ValueError("tls_port needs tls material")
        self.work_dir = work_dir
        self.name = name
        self.tls = tls
        self.tls_require_certificate = tls_require_certificate
        self.tls_identity_as_username = tls_identity_as_username
        self.users = dict(users) if users is not None else None
        self.password_file = password_file
        self.acl = acl
        if allow_anonymous is None:
            allow_anonymous = users is None and password_file is None
        self.allow_anonymous = allow_anonymous
        self.max_queued_messages = max_queued_messages
        self.persistence = persistence
        self.log_types = log_types
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self._port = port
        self._tls_port = tls_port
        # Ports we chose ourselves may be re-chosen if someone else grabbed them before the
        # first start; ports given by the caller, or already used by a run, are kept.
        self._ports_chosen_here = port is None and tls_port is None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], Mosquitto] | None = None
        self.starts = 0
        """How many times the broker process was started successfully."""

    # -- addresses and paths -------------------------------------------------------------

    host = LOOPBACK
    """The only interface the broker listens on."""

    @property
    def port(self) -> int:
        """The plain MQTT port. Chosen (a free port) on first access, then fixed."""
        if self._port is None:
            self._port = free_listen_port(self.host, exclude=_taken(self._tls_port))
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The TLS port, or ``None`` without ``tls``. Chosen on first access, then fixed."""
        if self.tls is None:
            return None
        if self._tls_port is None:
            self._tls_port = free_listen_port(self.host, exclude=_taken(self._port))
        return self._tls_port

    @property
    def config_path(self) -> Path:
        """The generated configuration file (rewritten by every start)."""
        return self.work_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """The broker's log, appended to by every run (stdout and stderr included)."""
        return self.work_dir / "mosquitto.log"

    @property
    def persistence_path(self) -> Path:
        """Where the persistence database lives when ``persistence`` is on."""
        return self.work_dir / "mosquitto.db"

    # -- process state -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broker process exists and has not exited."""
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
        """Start the broker; return once it is serving clients on all its listeners.

        Readiness handshake, bounded by ``start_timeout``: after spawning, connect to the
        plain port with ``socket.create_connection`` in a loop (waiting on the process between
        attempts, so an early exit is noticed at once) and exchange an MQTT CONNECT/CONNACK.
        A bare TCP accept is not enough: the kernel accepts as soon as the socket listens,
        before mosquitto installs its signal handlers (a SIGTERM then would kill it without
        saving persistence) and before it would notice that another listener failed to bind.
        The CONNACK proves the broker is in its main loop with every listener open (mosquitto
        opens all of them before entering it). So that the CONNACK cannot come from another
        process, the ports are checked free just before spawning; ports this object chose
        itself and never used are re-chosen if they were taken meanwhile, a port given by the
        caller or already used by an earlier run is an error.
        Raises :class:`MosquittoStartError` with the log tail when the broker exits early or
        is not ready in time (the process is then killed: the broker is left not running),
        :class:`MosquittoError` if it is already running, :class:`MosquittoNotFoundError`
        without a binary. Blocking; returns ``self``.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            process = self._spawn()
            try:
                self._wait_ready(process, time.monotonic() + self.start_timeout)
            except MosquittoStartError:
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
        """Awaitable :meth:`start`: spawns on the loop, waits for readiness in a worker thread.

        Same contract as :meth:`start`. If cancelled while waiting, the broker is killed
        before ``CancelledError`` propagates.
        """
        self._check_not_running()
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not self._ports_bindable(attempt):
                continue
            process = self._spawn()
            deadline = time.monotonic() + self.start_timeout
            try:
                await asyncio.to_thread(self._wait_ready, process, deadline)
            except MosquittoStartError:
                await self.akill()
                if not self._retry_on_other_ports(attempt):
                    raise
            except BaseException:
                self.kill()  # also on cancellation: no await may be cancelled again here
                raise
            else:
                self._started()
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the broker gracefully: SIGTERM, wait ``stop_timeout``, then SIGKILL and wait.

        With ``persistence`` the database is saved on this path. A no-op when not running
        (a process that died by itself is reaped). Blocking; never raises for a process that
        is already gone.
        """
        self._terminate(signal.SIGTERM, self.stop_timeout)

    def kill(self) -> None:
        """Kill the broker with SIGKILL (no goodbye to clients, nothing saved) and wait for it.

        A no-op when not running. Blocking.
        """
        self._terminate(signal.SIGKILL, KILL_WAIT_S)

    def restart(self, *, kill: bool = False) -> Self:
        """:meth:`stop` (or :meth:`kill`) if running, then :meth:`start` on the same ports.

        Mosquitto sets ``SO_REUSEADDR``, so connections left in ``TIME_WAIT`` by the previous
        run do not delay the new bind. Raises like :meth:`start`.
        """
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __repr__(self) -> str:
        tls = f" tls_port={self._tls_port}" if self.tls is not None else ""
        return f"<Mosquitto {self.name} port={self._port}{tls} pid={self.pid}>"

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Write the configuration and start the process (does not wait for readiness)."""
        self._check_not_running()
        binary = self._binary or find_mosquitto()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.config_path, render_config(self))
        argv = [str(binary), "-c", str(self.config_path)]
        ports = f"port {self.port}" + (f", tls port {self.tls_port}" if self.tls else "")
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

    def _check_not_running(self) -> None:
        if self.running:
            raise MosquittoError(f"{self!r} is already running")

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until the broker answers an MQTT CONNECT on its plain port; see :meth:`start`."""
        wait_for_connack(
            process,
            self.host,
            self.port,
            deadline,
            start_timeout=self.start_timeout,
            probe_timeout=_PROBE_TIMEOUT_S,
            poll_interval=_READY_POLL_S,
            exited_before="before accepting connections",
            error=self._start_error,
        )

    def _start_error(self, what: str) -> MosquittoStartError:
        return MosquittoStartError(
            f"mosquitto {self.name!r} (port {self._port}) {what}; "
            f"log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def _ports_bindable(self, attempt: int) -> bool:
        """Before spawning: True if the listener ports are free; False after re-choosing them.

        Raises :class:`MosquittoStartError` when a port is busy and may not be re-chosen.
        """
        ports = [self.port] + ([p] if (p := self.tls_port) is not None else [])
        busy = [port for port in ports if not port_is_free(port, self.host)]
        if not busy:
            return True
        if not self._may_rechoose_ports(attempt):
            raise MosquittoStartError(
                f"mosquitto {self.name!r}: port(s) {busy} on {self.host} already in use "
                "by another process"
            )
        logger.warning("%s: ports %s were taken meanwhile, choosing others", self.name, busy)
        self._port = self._tls_port = None
        return False

    def _retry_on_other_ports(self, attempt: int) -> bool:
        """After a failed start: re-choose ports and return True if worth another attempt."""
        if not self._may_rechoose_ports(attempt):
            return False
        if "Address already in use" not in self.log_tail(10):
            return False
        logger.warning("%s: ports %s were taken meanwhile, choosing others", self.name, self._port)
        self._port = self._tls_port = None
        return True

    def _may_rechoose_ports(self, attempt: int) -> bool:
        return self._ports_chosen_here and self.starts == 0 and attempt < _START_ATTEMPTS

    def _started(self) -> None:
        self.starts += 1
        logger.info("%s: ready on port %s (pid %s)", self.name, self._port, self.pid)

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
