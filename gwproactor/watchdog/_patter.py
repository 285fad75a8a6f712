"""Glue between the internal watchdog and the external one: pat systemd (and/or run a pat
command) only while every monitored name is alive, so a stuck part gets the unit restarted."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Sequence

from result import Err, Ok

from gwproactor.errors import ConfigError, StateError
from gwproactor.watchdog._external import run_pat_command
from gwproactor.watchdog._internal import InternalWatchdog, call_guarded
from gwproactor.watchdog._sdnotify import SdNotifier, one_line

__all__ = ("PatOutcome", "WatchdogPatter")

logger = logging.getLogger("gwproactor.watchdog")  # public name: the module is private

TASK_NAME = "watchdog.patter"


class PatOutcome(enum.Enum):
    """What one :meth:`WatchdogPatter.pat_once` did."""

    sent = "sent"
    """Every target was patted."""
    withheld = "withheld"
    """A monitored name is stalled: nothing was patted, on purpose."""
    failed = "failed"
    """We meant to pat but a target did not take it (datagram dropped, command failed)."""
    no_target = "no_target"
    """There is nothing to pat (no systemd watchdog, no command)."""


class WatchdogPatter:
    """Pats the external watchdog every :attr:`interval_seconds` while the internal one is
    satisfied, and relays readiness and status to the service manager.

    Targets: ``WATCHDOG=1`` through ``notifier`` when the manager runs a watchdog for us
    (``notifier`` is enabled and its ``watchdog_interval()`` is not None), and
    ``external_command`` (an argv, usually from :meth:`ExternalWatchdogCommandBuilder.pat_args`)
    when not empty. The interval is the shortest of the targets' intervals
    (``interval_seconds`` overrides it); with no target, :meth:`start` starts nothing.

    When a check finds a stalled name, no target is patted until every name is alive again;
    the first withheld pat logs a WARNING and calls ``on_withheld(stalled_names)`` once per
    episode, and resuming logs at INFO. ``on_pat(outcome)`` is called after every periodic
    pat (counters, tests). A failing pat command is logged once per episode and retried at
    the next interval. Callback errors are logged, never raised into the patting task.

    Thread: loop-only. The constructor is cheap; :meth:`start` creates the task named
    ``watchdog.patter``; :meth:`stop` cancels it (and kills a running pat command). An
    unexpected error ends the task, so patting stops and the manager restarts the unit;
    :meth:`stop` then re-raises it.
    """

    def __init__(
        self,
        watchdog: InternalWatchdog,
        notifier: SdNotifier | None = None,
        *,
        external_command: Sequence[str] = (),
        external_interval_seconds: float | None = None,
        external_timeout_seconds: float = 5.0,
        interval_seconds: float | None = None,
        on_withheld: Callable[[list[str]], None] | None = None,
        on_pat: Callable[[PatOutcome], None] | None = None,
    ) -> None:
        if external_command and external_interval_seconds is None and interval_seconds is None:
            raise ConfigError("an external pat command needs external_interval_seconds")
        for value in (external_interval_seconds, interval_seconds, external_timeout_seconds):
            if value is not None and value <= 0:
                raise ConfigError("watchdog intervals and timeouts must be positive")
        self._watchdog = watchdog
        self._notifier = notifier or SdNotifier({})
        self._external_command = list(external_command)
        self._external_interval = external_interval_seconds
        self._external_timeout = external_timeout_seconds
        self._interval_override = interval_seconds
        self._on_withheld = on_withheld
        self._on_pat = on_pat
        self._task: asyncio.Task[None] | None = None
        self._withholding = False
        self._command_failing = False
        self._last_status: str | None = None
        self.sent_count = 0
        self.withheld_count = 0
        self.failed_count = 0

    @property
    def notifier(self) -> SdNotifier:
        return self._notifier

    @property
    def interval_seconds(self) -> float | None:
        """Seconds between pats, or None when there is nothing to pat."""
        if self._interval_override is not None and self._has_target():
            return self._interval_override
        candidates: list[float] = []
        sd_interval = self._sd_interval()
        if sd_interval is not None:
            candidates.append(sd_interval)
        if self._external_command and self._external_interval is not None:
            candidates.append(self._external_interval)
        return min(candidates, default=None)

    def _sd_interval(self) -> float | None:
        # WATCHDOG_USEC without a usable NOTIFY_SOCKET leaves nobody to pat.
        return self._notifier.watchdog_interval() if self._notifier.enabled else None

    def _has_target(self) -> bool:
        return bool(self._external_command) or self._sd_interval() is not None

    @property
    def withholding(self) -> bool:
        """The last pat was withheld because a monitored name is stalled."""
        return self._withholding

    # -- readiness and status -------------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """Tell the manager that start-up is done (``READY=1``, with ``STATUS=`` in the same
        datagram when given). Returns whether the datagram was sent."""
        if status is not None:
            self._last_status = one_line(status)
        return self._notifier.ready(status)

    def set_status(self, text: str) -> bool:
        """Send ``STATUS=<text>`` if it differs from the last status sent (after making it
        one line), so callers may call this on every state change. Returns whether a
        datagram was sent."""
        line = one_line(text)
        if line == self._last_status:
            return False
        self._last_status = line
        return self._notifier.status(line)

    def stopping(self) -> bool:
        """Tell the manager a clean shutdown has begun (``STOPPING=1``). Patting goes on
        until :meth:`stop`, so a slow shutdown is not mistaken for a hang."""
        return self._notifier.stopping()

    # -- patting --------------------------------------------------------------------------------

    async def pat_once(self) -> PatOutcome:
        """Check the internal watchdog and pat every target if it is satisfied.

        Loop-only. Waits for the pat command, if any (bounded by its timeout); cancellation
        kills it and propagates.
        """
        if not self._has_target():
            return PatOutcome.no_target
        stalled = self._watchdog.check()
        if stalled:
            self.withheld_count += 1
            if not self._withholding:
                self._withholding = True
                logger.warning("not patting the external watchdog: %s stalled", ", ".join(stalled))
                if self._on_withheld is not None:
                    call_guarded(self._on_withheld, stalled)
            return PatOutcome.withheld
        if self._withholding:
            self._withholding = False
            logger.info("patting the external watchdog again")
        ok = True
        if self._sd_interval() is not None:
            ok = self._notifier.watchdog() and ok
        if self._external_command:
            ok = await self._run_command() and ok
        if ok:
            self.sent_count += 1
            return PatOutcome.sent
        self.failed_count += 1
        return PatOutcome.failed

    async def _run_command(self) -> bool:
        timeout = self._external_timeout
        match await run_pat_command(self._external_command, timeout):
            case Ok():
                if self._command_failing:
                    self._command_failing = False
                    logger.info("external watchdog command works again")
                return True
            case Err(reason):
                if not self._command_failing:
                    self._command_failing = True
                    logger.warning("external watchdog command failed: %s", reason)
                else:
                    logger.debug("external watchdog command failed: %s", reason)
                return False
        raise AssertionError("unreachable")  # pragma: no cover

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Pat now and every :attr:`interval_seconds` after, in a task named
        ``watchdog.patter``. Starts nothing when there is no target. Loop-only; raises
        StateError if already started."""
        if self._task is not None:
            raise StateError("watchdog patter already started")
        interval = self.interval_seconds
        if interval is None:
            logger.debug("no external watchdog to pat")
            return
        self._task = asyncio.get_running_loop().create_task(self._run(interval), name=TASK_NAME)

    async def stop(self) -> None:
        """Cancel the patting task and wait for it (a running pat command is killed).
        Idempotent. Loop-only. Does not send ``STOPPING=1``: call :meth:`stopping`."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            outcome = await self.pat_once()
            if self._on_pat is not None:
                call_guarded(self._on_pat, outcome)
            # Keep to the schedule despite a slow command, but after a late pat go on from
            # now rather than fire a burst to catch up: lateness is what the margin is for.
            due = max(due + interval, loop.time())
            await asyncio.sleep(due - loop.time())
