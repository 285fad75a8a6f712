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
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Self

# Package-private helpers of the mosquitto manager: the MQTT readiness probe, private files.
from gwproactor.testing.mosquitto import _answers_connect, _write_private
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

RABBITMQ_ENV = "GW_RABBITMQ_SERVER"
INSTALL_HINT = "apt-get install rabbitmq-server, or point $GW_RABBITMQ_SERVER at its start script"
MQTT5_VERSION = (3, 13, 0)
"""The first RabbitMQ release whose MQTT plugin speaks MQTT 5."""

# Debian's /usr/sbin/rabbitmq-server is a wrapper that re-runs the real script as user
# "rabbitmq" from /var/lib/rabbitmq (the system node's home): use the real script.
_REAL_SCRIPTS = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/local/lib/rabbitmq/bin/rabbitmq-server",
)
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/bin")
_WRAPPER_MARK = b"su rabbitmq"
_VERSION_RE = re.compile(r"rabbitmq_server-(\d+)\.(\d+)\.(\d+)")
_OWNER_ENV = "GW_TEST_RABBITMQ_OWNER"
_READY_POLL_S = 0.05
_PROBE_TIMEOUT_S = 5.0
_KILL_WAIT_S = 10.0
_START_ATTEMPTS = 3  # only while the ports are still our own unused choice
_PORT_IN_USE = ("eaddrinuse", "address already in use")
_LOG_TAIL_BYTES = 256 * 1024


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
    override = os.environ.get(RABBITMQ_ENV)
    if override:
        if os.access(override, os.X_OK):
            return Path(override)
        raise RabbitMQNotFoundError(f"${RABBITMQ_ENV}={override!r} is not an executable")
    for script in _REAL_SCRIPTS:
        if os.access(script, os.X_OK):
            return Path(script)
    found = shutil.which("rabbitmq-server") or shutil.which(
        "rabbitmq-server", path=os.pathsep.join(_SBIN_DIRS)
    )
    if found is None:
        raise RabbitMQNotFoundError(f"rabbitmq-server is not installed ({INSTALL_HINT})")
    with Path(found).open("rb") as script_file:
        if _WRAPPER_MARK in script_file.read(8192):
            raise RabbitMQNotFoundError(
                f"{found} only re-runs RabbitMQ as the system user; set ${RABBITMQ_ENV} to the "
                "real start script (sbin/rabbitmq-server of the rabbitmq_server-<version> tree)"
            )
    return Path(found)


def find_epmd() -> Path:
    """Return Erlang's ``epmd`` (on ``PATH``, else in an ``erts-*/bin`` of the Erlang root)."""
    found = shutil.which("epmd")
    if found is not None:
        return Path(found)
    for root in (Path("/usr/lib/erlang"), Path("/usr/local/lib/erlang")):
        for candidate in sorted(root.glob("erts-*/bin/epmd"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    raise RabbitMQNotFoundError(f"Erlang's epmd was not found ({INSTALL_HINT})")


def rabbitmq_version(script: Path) -> tuple[int, int, int] | None:
    """The version in the installation path of ``script`` (``.../rabbitmq_server-3.10.8/...``
    after resolving links), or None. Cheap: no Erlang VM is started."""
    match = _VERSION_RE.search(str(script.resolve()))
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class RabbitMQ:
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
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
                data = log.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def leftover_pids(self) -> list[int]:
        """Live processes (not zombies) carrying this object's :attr:`owner_tag` (Linux
        ``/proc``; empty elsewhere)."""
        return list(_tagged_pids(f"{_OWNER_ENV}={self.owner_tag}".encode()))

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
        _kill_all(self.owner_tag, node, epmd)
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

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self, *, kill: bool = False) -> Self:
        await (self.akill() if kill else self.astop())
        return await self.astart()

    def __repr__(self) -> str:
        return f"<RabbitMQ {self.name} port={self._ports['mqtt']} pid={self.pid}>"

    # -- internals -----------------------------------------------------------------------

    def _check_not_running(self) -> None:
        if self.running:
            raise RabbitMQError(f"{self!r} is already running")
        if self._epmd is not None:
            self.kill()  # the node died by itself: clear what is left of that run

    def _popen(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        setpriv = shutil.which("setpriv")
        if setpriv is not None and os.uname().sysname == "Linux":
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=env,
                start_new_session=True,
            )

    def _spawn_epmd(self) -> subprocess.Popen[bytes]:
        """Start this node's epmd, in the foreground (it stays our child, in our reach)."""
        binary = self._epmd_binary or find_epmd()
        self._prepare_files()
        self._mark(f"starting epmd on port {self.epmd_port}")
        argv = [str(binary), "-port", str(self.epmd_port), "-address", self.host]
        self._epmd = epmd = self._popen(argv, self._environment())
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
        self._node = node = self._popen([str(binary)], self._environment())
        self._arm_finalizer()
        logger.debug("%s: spawned node pid %d (%s)", self.name, node.pid, self.node_name)
        return node

    def _arm_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill_all, self.owner_tag, self._node, self._epmd)

    def _mark(self, what: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"==== test harness: {self.name}: {what} ====\n".encode())

    def _prepare_files(self) -> None:
        """Write the configuration, the plugin list, an empty env file and (once) a cookie."""
        for directory in (self.work_dir, self.home_dir, self.work_dir / "mnesia"):
            directory.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "log").mkdir(exist_ok=True)
        _write_private(self.config_path, self._config())
        _write_private(self.work_dir / "enabled_plugins", "[rabbitmq_mqtt].\n")
        # Without a file of our own the start script would read /etc/rabbitmq/rabbitmq-env.conf.
        _write_private(self.work_dir / "rabbitmq-env.conf", "")
        cookie = self.home_dir / ".erlang.cookie"
        if not cookie.exists():
            _write_private(cookie, secrets.token_hex(20).upper())
            os.chmod(cookie, 0o400)

    def _config(self) -> str:
        lines = [
            f"# generated by gwproactor.testing.rabbitmq for {self.name}",
            f"listeners.tcp.default = {self.host}:{self.amqp_port}",
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}",
            "mqtt.allow_anonymous = true",
            "loopback_users = none",
            "log.console = true",
            "log.console.level = info",
        ]
        if self.extra_config:
            lines += ["# extra_config", self.extra_config]
        return "\n".join(lines) + "\n"

    def _environment(self) -> dict[str, str]:
        # Nothing of a system node's settings may leak in: drop inherited RabbitMQ/Erlang
        # variables, then say everything explicitly.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_"))
            and k not in ("NOTIFY_SOCKET", "CONF_ENV_FILE")
        }
        work = self.work_dir
        env.update(
            {
                _OWNER_ENV: self.owner_tag,
                "HOME": str(self.home_dir),
                # Makes rabbitmq-server exec the VM instead of forking it (see module doc).
                "RUNNING_UNDER_SYSTEMD": "true",
                "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": self.host,
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_NODE_IP_ADDRESS": self.host,
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
                "RABBITMQ_LOG_BASE": str(work / "log"),
                "RABBITMQ_LOGS": "-",
                "RABBITMQ_CONFIG_FILE": str(self.config_path),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(work / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(work / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
            }
        )
        return env

    def _wait_ready(self, node: subprocess.Popen[bytes], deadline: float) -> None:
        """Block until the node answers an MQTT CONNECT on :attr:`port`."""
        while True:
            if (code := node.poll()) is not None:
                raise self._start_error(f"exited with code {code} before accepting MQTT")
            if self._epmd is not None and (code := self._epmd.poll()) is not None:
                raise self._start_error(f"its epmd exited with code {code}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._start_error(
                    f"did not answer an MQTT CONNECT on port {self.port} "
                    f"within {self.start_timeout:g}s"
                )
            probe_timeout = min(_PROBE_TIMEOUT_S, remaining)
            if _answers_connect(self.host, self.port, probe_timeout, lambda: node.poll() is None):
                return
            # Waiting on the process (not sleeping) returns at once if it exits meanwhile.
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=min(_READY_POLL_S, max(0.0, deadline - time.monotonic())))

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


def _kill_all(
    owner_tag: str,
    node: subprocess.Popen[bytes] | None,
    epmd: subprocess.Popen[bytes] | None,
) -> None:
    """SIGKILL the node's process group, epmd and every live process tagged ``owner_tag``;
    reap our children. Also the finalizer: never raises."""
    if node is not None and node.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(node.pid, signal.SIGKILL)  # its own session: pgid == pid
    marker = f"{_OWNER_ENV}={owner_tag}".encode()
    deadline = time.monotonic() + _KILL_WAIT_S
    while True:
        for pid in _tagged_pids(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for process in (node, epmd):
            if process is not None:
                with contextlib.suppress(OSError):
                    process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if not any(True for _ in _tagged_pids(marker)) or time.monotonic() >= deadline:
            return
        time.sleep(_READY_POLL_S)  # killed processes take a moment to become zombies


def _tagged_pids(marker: bytes) -> Iterator[int]:
    """Pids of live (non-zombie) processes whose environment contains ``marker``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_bytes()
            if stat.rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                continue
            environ = (entry / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if marker in environ.split(b"\0"):
            yield int(entry.name)
