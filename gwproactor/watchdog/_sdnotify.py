"""The sd_notify protocol, spoken directly (no python-systemd).

A notification is one datagram of ``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named
by ``$NOTIFY_SOCKET``: a filesystem path, or, when it starts with ``@``, a name in Linux's
abstract namespace. The service manager attaches our credentials itself (``SO_PASSCRED`` on
its side), so a plain ``sendto`` is the whole protocol.

Sending never blocks the loop: the socket is non-blocking, and a datagram the manager cannot
take right now (``EAGAIN``/``ENOBUFS``) is dropped and counted. A lost ``WATCHDOG=1`` is
harmless because we pat at half the manager's timeout; a lost ``READY=1`` is not, but the
queue is only full if the manager is itself stuck.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import time
from collections.abc import Mapping

__all__ = ("STATUS_MAX_CHARS", "SdNotifier", "one_line")

logger = logging.getLogger("gwproactor.watchdog")  # public name: the module is private

STATUS_MAX_CHARS = 1024
"""``STATUS=`` text is cut to this length; the manager's datagram buffer is a few KiB and a
status line longer than a screen is no use in ``systemctl status`` anyway."""

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
# The manager is stuck or slow: drop this datagram rather than wait for room.
_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})


def one_line(text: str, max_chars: int = STATUS_MAX_CHARS) -> str:
    """``text`` as a single line: every line break (``\\n``, ``\\r``, and the other
    separators ``str.splitlines`` knows) becomes one space, and the result is cut to
    ``max_chars``. A raw newline would end the assignment and start a bogus key."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())[:max_chars]


def _address(notify_socket: str | None) -> str | None:
    """The ``sendto`` address for ``$NOTIFY_SOCKET``, or None when we cannot use it."""
    if not notify_socket:
        return None
    if notify_socket.startswith("@"):
        # Python spells an abstract-namespace address with a leading NUL byte.
        return "\0" + notify_socket[1:]
    if notify_socket.startswith("/"):
        return notify_socket
    # Relative paths are refused by systemd itself; "vsock:" addresses (systemd >= 253, for
    # VMs) are not something a field gateway runs under.
    return None


class SdNotifier:
    """Sends sd_notify datagrams to the service manager.

    Thread: not thread-safe; call every method from one thread (the loop's). No method
    blocks: sending is a single non-blocking ``sendto``.

    The constructor reads the environment (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``,
    ``WATCHDOG_PID``) from ``environ`` (default: ``os.environ`` at construction) and does no
    I/O; the socket is created at the first send (or by :meth:`open`) and closed by
    :meth:`close`. When ``NOTIFY_SOCKET`` is unset or unusable :attr:`enabled` is False and
    every method is a no-op returning False (an unusable one is logged once at WARNING).

    Failures never raise: a datagram that does not fit (``EAGAIN``, ``ENOBUFS``) is dropped
    and counted in :attr:`dropped_count`; any other ``OSError`` is counted in
    :attr:`error_count` and logged once at WARNING until a send succeeds again.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self._notify_socket = env.get("NOTIFY_SOCKET", "")
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._pid = pid
        self._address = _address(self._notify_socket)
        self._sock: socket.socket | None = None
        self._logged_errnos: set[int | None] = set()
        self._warned_unusable = False
        self.sent_count = 0
        self.dropped_count = 0
        self.error_count = 0

    @property
    def enabled(self) -> bool:
        """Whether a usable ``$NOTIFY_SOCKET`` was given (not whether anyone listens)."""
        return self._address is not None

    @property
    def notify_socket(self) -> str:
        """``$NOTIFY_SOCKET`` as given (``@`` form for abstract names), or ``""``."""
        return self._notify_socket

    def watchdog_interval(self) -> float | None:
        """How often to send ``WATCHDOG=1``, in seconds: half of ``$WATCHDOG_USEC``, as
        ``sd_watchdog_enabled`` advises. None when the manager runs no watchdog for us:
        ``WATCHDOG_USEC`` unset, not a positive integer, or ``WATCHDOG_PID`` set to another
        process (the variables were inherited from a parent that is the watched one)."""
        if self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None:
            own_pid = os.getpid() if self._pid is None else self._pid
            try:
                if int(self._watchdog_pid) != own_pid:
                    return None
            except ValueError:
                logger.debug("ignoring WATCHDOG_PID=%r: not an integer", self._watchdog_pid)
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            logger.debug("ignoring WATCHDOG_USEC=%r: not an integer", self._watchdog_usec)
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def open(self) -> None:
        """Create the socket now instead of at the first send. Idempotent; a no-op when
        disabled. Raises OSError if no socket can be created at all (out of descriptors)."""
        if self._address is None:
            self._warn_unusable()
            return
        if self._sock is None:
            # Close-on-exec so pat commands and other children do not inherit it; Python
            # makes sockets non-inheritable anyway, the flag closes the fork/exec race too.
            kind = socket.SOCK_DGRAM | getattr(socket, "SOCK_CLOEXEC", 0)
            sock = socket.socket(socket.AF_UNIX, kind)
            sock.setblocking(False)
            self._sock = sock

    def close(self) -> None:
        """Close the socket. Idempotent; a later send opens a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def notify(self, **fields: str | int) -> bool:
        """Send ``fields`` as one datagram of ``KEY=VALUE`` lines, in the order given.

        Values are converted with ``str`` and made one line (see :func:`one_line`). Returns
        True if the datagram was handed to the kernel, False if disabled, dropped or failed.
        Raises ValueError (a programming error) when no field is given or a key is not an
        upper-case protocol name.
        """
        if not fields:
            raise ValueError("notify() needs at least one field")
        for key in fields:
            if not _KEY.fullmatch(key):
                raise ValueError(f"sd_notify keys are upper case names, not {key!r}")
        text = "\n".join(f"{key}={one_line(str(value))}" for key, value in fields.items())
        return self._send(text.encode())

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``, with ``STATUS=`` in the same datagram when given."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """``STATUS=<text>``, made one line and cut to :data:`STATUS_MAX_CHARS`."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: we are alive. Send only when the internal watchdog agrees."""
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        """``STOPPING=1``: a clean shutdown has begun."""
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (required by ``Type=notify-reload``);
        send :meth:`ready` when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def _warn_unusable(self) -> None:
        # Unset is the normal case outside systemd; set but unusable is a unit file mistake.
        if self._notify_socket and not self._warned_unusable:
            self._warned_unusable = True
            logger.warning("NOTIFY_SOCKET=%r is not usable; not notifying", self._notify_socket)

    def _send(self, data: bytes) -> bool:
        if self._address is None:
            self._warn_unusable()
            return False
        try:
            self.open()
            assert self._sock is not None
            self._sock.sendto(data, self._address)
        except OSError as e:
            if e.errno in _DROP_ERRNOS:
                self.dropped_count += 1
                logger.debug("sd_notify datagram dropped (%s)", errno.errorcode.get(e.errno or 0))
                return False
            self.error_count += 1
            # Once per kind of failure until a send works again: a missing manager socket
            # would otherwise log at every pat.
            if e.errno not in self._logged_errnos:
                self._logged_errnos.add(e.errno)
                logger.warning("sd_notify to %r failed: %s", self._notify_socket, e)
            return False
        self.sent_count += 1
        self._logged_errnos.clear()
        return True
