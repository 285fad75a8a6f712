"""A custom external-watchdog pat command, run as a child process without blocking the loop.

:class:`ExternalWatchdogCommandBuilder` keeps the seed's API: which argv pats the external
watchdog, and whether we run as a service at all. :func:`run_pat_command` runs that argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Sequence

from result import Err, Ok, Result

__all__ = (
    "ExternalWatchdogCommandBuilder",
    "SystemDWatchdogCommandBuilder",
    "run_pat_command",
)

DEFAULT_SERVICE_NAME = "gwproactor"
_STDERR_MAX_CHARS = 500
_TRUE_VALUES = frozenset({"1", "true"})
_NOT_IN_VARIABLE = re.compile(r"[^A-Z0-9_]")


class ExternalWatchdogCommandBuilder:
    """Builds the argv that pats the external watchdog; an empty list means "run nothing".

    This is the reference API's builder, for code that drives its own pat command. Nothing
    is run unless the environment variable named by :meth:`service_variable_name` (for the
    gateway ``site-1``: ``SITE_1_RUNNING_AS_SERVICE``) is ``1`` or ``true``, and even then
    the base class has no command of its own (:meth:`default_pat_args` is empty): pass
    ``args`` or use a subclass such as :class:`SystemDWatchdogCommandBuilder`. Customise by
    overriding the classmethods. Pure: reads the environment, no I/O; any thread.

    The gateway itself does not consult the variable: a ``[watchdog] external_command`` in
    the settings runs whenever it is configured (configuring it is the operator's consent).
    """

    @classmethod
    def service_variable_name(cls, service_name: str = DEFAULT_SERVICE_NAME) -> str:
        """``<NAME>_RUNNING_AS_SERVICE`` with the name upper-cased and every character that
        cannot appear in a shell variable name (``-``, ``.``) written as ``_``:
        ``GWPROACTOR_RUNNING_AS_SERVICE`` for the default name, ``SITE_1_RUNNING_AS_SERVICE``
        for ``site-1``. A name starting with a digit gets a leading ``_``."""
        stem = _NOT_IN_VARIABLE.sub("_", service_name.upper())
        if not stem or stem[0].isdigit():
            stem = f"_{stem}"
        return f"{stem}_RUNNING_AS_SERVICE"

    @classmethod
    def running_as_service(cls, service_name: str = DEFAULT_SERVICE_NAME) -> bool:
        """Whether the variable named by :meth:`service_variable_name` is ``1``/``true``."""
        value = os.environ.get(cls.service_variable_name(service_name), "")
        return value.strip().lower() in _TRUE_VALUES

    @classmethod
    def default_pat_args(cls, pid: int | None = None) -> list[str]:
        """The argv used when none is given; the base class has none."""
        return []

    @classmethod
    def pat_args(
        cls,
        service_name: str = DEFAULT_SERVICE_NAME,
        args: Sequence[str] | None = None,
        pid: int | None = None,
    ) -> list[str]:
        """The argv to run at each pat: ``args`` if given, else :meth:`default_pat_args`,
        and ``[]`` (run nothing) when not :meth:`running_as_service`. Positional as in the
        reference: ``pat_args(service_name, args, pid)``."""
        if not cls.running_as_service(service_name):
            return []
        if args is None:
            return cls.default_pat_args(pid=pid)
        return list(args)


class SystemDWatchdogCommandBuilder(ExternalWatchdogCommandBuilder):
    """Pats through ``systemd-notify --pid=<pid> WATCHDOG=1``. Only for units that cannot
    use the native sd_notify socket (``SdNotifier``), and it needs ``NotifyAccess=all``
    because the message comes from the child, not the main process."""

    @classmethod
    def default_pat_args(cls, pid: int | None = None) -> list[str]:
        return ["systemd-notify", f"--pid={os.getpid() if pid is None else pid}", "WATCHDOG=1"]


async def run_pat_command(args: Sequence[str], timeout: float) -> Result[None, str]:
    """Run ``args`` as a child process (no shell), and wait for it at most ``timeout``
    seconds without blocking the loop.

    Returns ``Ok(None)`` on exit status 0, else ``Err`` with a one-line reason: the exit
    status and the end of stderr, "timed out", or why it could not be started. A child
    still running at the timeout is killed and reaped. Loop-only.

    Cancellation kills the child, waits for it to be reaped (shielded, so the transport is
    not leaked), and re-raises CancelledError.

    Raises ValueError for an empty ``args`` or a non-positive ``timeout`` (programming
    errors); stdin and stdout are ``/dev/null``.
    """
    if not args:
        raise ValueError("run_pat_command needs a command")
    if timeout <= 0:
        raise ValueError("run_pat_command needs a positive timeout")
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        return Err(f"cannot run {args[0]!r}: {e}")
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate()
    except TimeoutError:
        await _kill(process)
        return Err(f"{args[0]!r} timed out after {timeout:g} s")
    except asyncio.CancelledError:
        await asyncio.shield(_kill(process))
        raise
    if process.returncode == 0:
        return Ok(None)
    detail = " ".join(stderr.decode(errors="replace").split())[-_STDERR_MAX_CHARS:]
    reason = f"{args[0]!r} exited with status {process.returncode}"
    return Err(f"{reason}: {detail}" if detail else reason)


async def _kill(process: asyncio.subprocess.Process) -> None:
    # The child may have exited between the timeout and the kill.
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
