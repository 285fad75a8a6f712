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

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from gwproactor.testing._lifecycle import ContextManagerMixin
from gwproactor.testing._mosquitto_conf import (
    MosquittoOptions,
    hash_password,
    render_config,
    write_password_file,
)
from gwproactor.testing._procs import write_private
from gwproactor.testing._server import SingleProcessServer
from gwproactor.testing.certs import TlsMaterial

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


class Mosquitto(SingleProcessServer, ContextManagerMixin):
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
    Mosquitto sets ``SO_REUSEADDR``, so connections left in ``TIME_WAIT`` by the previous run
    do not delay the bind of a :meth:`restart`.
    """

    _error = MosquittoError
    _start_error_type = MosquittoStartError
    _kind = "mosquitto"
    _busy_note = " by another process"
    _file_stem = "mosquitto"
    _probe_timeout = 1.0
    _ready_poll = 0.01
    _exited_before = "before accepting connections"
    _logger = logger

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
        super().__init__(
            work_dir,
            name=name,
            ports={"mqtt": port, "tls": tls_port},
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            binary=binary,
        )
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

    # -- addresses and paths -------------------------------------------------------------

    @property
    def tls_port(self) -> int | None:
        """The TLS port, or ``None`` without ``tls``. Chosen on first access, then fixed."""
        return None if self.tls is None else self._port("tls")

    @property
    def persistence_path(self) -> Path:
        """Where the persistence database lives when ``persistence`` is on."""
        return self.work_dir / "mosquitto.db"

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
        return super().start()

    def __repr__(self) -> str:
        tls = f" tls_port={self._ports['tls']}" if self.tls is not None else ""
        return f"<Mosquitto {self.name} port={self._ports['mqtt']}{tls} pid={self.pid}>"

    # -- hooks ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"port {self._ports['mqtt']}"

    def _listen_ports(self) -> list[int]:
        return [self.port] + ([p] if (p := self.tls_port) is not None else [])

    def _find_binary(self) -> Path:
        return find_mosquitto()

    def _write_files(self) -> None:
        write_private(self.config_path, render_config(self))

    def _ports_text(self) -> str:
        return f"port {self.port}" + (f", tls port {self.tls_port}" if self.tls else "")
