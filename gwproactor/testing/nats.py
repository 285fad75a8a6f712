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

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Self

from gwproactor.testing._lifecycle import ContextManagerMixin
from gwproactor.testing._procs import write_private
from gwproactor.testing._server import SingleProcessServer

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


class NatsServer(SingleProcessServer, ContextManagerMixin):
    """One real nats-server with MQTT on 127.0.0.1, restartable on the same ports.

    The constructor does no I/O. Options:

    * ``port`` (MQTT) / ``client_port`` (NATS protocol): fixed ports; by default free ports
      are picked when first read and kept across restarts.
    * ``max_memory_store`` / ``max_file_store``: JetStream limits (NATS size strings).
    * ``mqtt_config``: lines added inside the ``mqtt { }`` block (e.g. ``ack_wait: "10s"``,
      ``max_ack_pending: 100``); ``extra_config``: lines appended at the top level.
    * ``start_timeout`` bounds :meth:`start`; ``stop_timeout`` the SIGTERM grace period of
      :meth:`stop`; ``binary`` overrides :func:`find_nats_server`.

    :meth:`restart` keeps the JetStream store: the same server comes back.
    """

    _error = NatsError
    _start_error_type = NatsStartError
    _kind = "nats-server"
    _file_stem = "nats"
    # The first MQTT CONNECT makes the server create its JetStream streams: allow for that.
    _probe_timeout = 5.0
    _ready_poll = 0.01
    _logger = logger

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
        super().__init__(
            work_dir,
            name=name,
            ports={"mqtt": port, "client": client_port},
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            binary=binary,
        )
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.mqtt_config = mqtt_config
        self.extra_config = extra_config

    @property
    def client_port(self) -> int:
        """The NATS client-protocol port. Chosen on first access, then fixed."""
        return self._port("client")

    @property
    def server_name(self) -> str:
        """The JetStream ``server_name`` (required for MQTT): ``gw_test_<mqtt port>``."""
        return f"gw_test_{self.port}"

    @property
    def store_dir(self) -> Path:
        """The JetStream store directory, kept across restarts."""
        return self.work_dir / "jetstream"

    def version(self) -> tuple[int, int, int]:
        """The server's version (runs ``nats-server --version``; blocking)."""
        return nats_server_version(self._binary or find_nats_server())

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
        return super().start()

    def __repr__(self) -> str:
        return f"<NatsServer {self.name} port={self._ports['mqtt']} pid={self.pid}>"

    # -- hooks ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"mqtt port {self._ports['mqtt']}"

    def _find_binary(self) -> Path:
        return find_nats_server()

    def _write_files(self) -> None:
        self.store_dir.mkdir(exist_ok=True)
        write_private(self.config_path, self._config())

    def _ports_text(self) -> str:
        return f"mqtt port {self.port}, client port {self.client_port}"

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
