"""The internal watchdog: every loop-driven part and every thread promises to pat a
:class:`~gwproactor.MonitoredName` within its timeout; a silent one is reported, and the
external watchdog is not patted while any name is silent (see ``_patter``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gwproactor.errors import ConfigError, StateError
from gwproactor.observe._records import FrozenRecord
from gwproactor.watchdog._spin import PollCounter
from gwproactor.watchdog.monitored import MonitoredName

if TYPE_CHECKING:
    from gwproactor.config import WatchdogSettings

__all__ = ("LOOP_NAME", "SPIN_NAME", "InternalWatchdog", "WatchdogEntry")

logger = logging.getLogger("gwproactor.watchdog")  # public name: the module is private

LOOP_NAME = "loop"
"""The monitored name of the event loop itself, registered by :meth:`InternalWatchdog.start`."""

SPIN_NAME = "loop_spin"
"""The monitored name of the spin check (see :mod:`gwproactor.watchdog._spin`), registered by
:meth:`InternalWatchdog.start` on a loop whose polls can be counted."""

StallCallback = Callable[[str, float], None]
RecoverCallback = Callable[[str], None]


class WatchdogEntry(FrozenRecord):
    """One monitored name as of a :meth:`InternalWatchdog.snapshot` (for ``/status``).

    ``silent_seconds`` is the time since the last pat; for :data:`LOOP_NAME` it is how late
    the last timer check ran (the loop's lag)."""

    __match_args__ = ("name", "timeout_seconds", "silent_seconds", "stalled")
    __slots__ = ("name", "silent_seconds", "stalled", "timeout_seconds")
    name: str
    timeout_seconds: float
    silent_seconds: float
    stalled: bool

    def __init__(
        self, name: str, timeout_seconds: float, silent_seconds: float, stalled: bool
    ) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "timeout_seconds", timeout_seconds)
        _set(self, "silent_seconds", silent_seconds)
        _set(self, "stalled", stalled)


def call_guarded(callback: Callable[..., None], *args: Any) -> None:
    """Call a reporting callback; log its error instead of raising it, so a faulty reporter
    cannot end the timer or task that called it."""
    try:
        callback(*args)
    # Blind on purpose: whatever a reporter raises, the watchdog must keep checking.
    except Exception as e:  # noqa: BLE001
        _log_callback_error(callback, e)


def _log_callback_error(callback: Callable[..., None], error: Exception) -> None:
    logger.error("watchdog callback %r failed: %s: %s", callback, type(error).__name__, error)
    logger.debug("traceback", exc_info=error)


def _log_stall(name: str, silent_seconds: float) -> None:
    logger.warning("watchdog: %s silent for %.1f s", name, silent_seconds)


def _log_recover(name: str) -> None:
    logger.info("watchdog: %s patted again", name)


class InternalWatchdog:
    """Tracks the last pat of every monitored name and reports silent ones.

    Thread: loop-only, except :meth:`pat_threadsafe` (any thread). The constructor is cheap
    and needs no loop; :meth:`start` (on the loop) adds the loop itself as :data:`LOOP_NAME`
    and begins a check every ``check_interval_seconds`` with ``loop.call_later``.

    Transitions are decided only by :meth:`check`: on the first check that finds a name
    silent for longer than its timeout, ``on_stall(name, silent_seconds)`` is called once;
    on the first check after it pats again, ``on_recover(name)``. Both run on the loop, from
    inside :meth:`check`; an exception they raise is logged and swallowed so a faulty
    reporter cannot stop the watchdog. The defaults log at WARNING and INFO.

    The loop cannot pat while it is blocked, and nothing on it can notice while it is, so
    the loop is judged by lag: when the timer callback runs more than
    ``loop_timeout_seconds`` after it was due, :data:`LOOP_NAME` is stalled until the next
    check that runs on time. Names patted from loop callbacks look silent after such a
    block too, until they next run; the ``loop`` entry tells which was the cause.

    A loop can also spin: re-run a callback that does nothing, for ever, with zero lag. Each
    timer check that finds fewer than ``spin_polls_per_second`` idle polls since the last
    one (see :mod:`gwproactor.watchdog._spin`) pats :data:`SPIN_NAME`; a loop that spins for
    longer than ``spin_seconds`` leaves it silent, so it stalls like any other name.

    ``clock`` must be monotonic (``time.monotonic`` by default, a fake one in tests); it
    may be called from threads through :meth:`pat_threadsafe`.
    """

    def __init__(
        self,
        *,
        check_interval_seconds: float = 1.0,
        loop_timeout_seconds: float = 10.0,
        spin_polls_per_second: float = 10_000.0,
        spin_seconds: float = 10.0,
        on_stall: StallCallback | None = None,
        on_recover: RecoverCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(check_interval_seconds, loop_timeout_seconds, spin_seconds) <= 0:
            raise ConfigError("watchdog intervals and timeouts must be positive")
        self.check_interval_seconds = check_interval_seconds
        self.loop_timeout_seconds = loop_timeout_seconds
        self.spin_polls_per_second = spin_polls_per_second
        self.spin_seconds = spin_seconds
        self._polls: PollCounter | None = None
        self._polls_at = (0, 0.0)  # (idle polls, loop time) at the last timer check
        self._idle_poll_rate = 0.0
        self._on_stall = on_stall or _log_stall
        self._on_recover = on_recover or _log_recover
        self._clock = clock
        self._monitored: dict[str, MonitoredName] = {}
        # name -> clock() of the last pat (or of registration). Written from any thread.
        self._pats: dict[str, float] = {}
        self._stalled: dict[str, float] = {}  # name -> silent seconds when it stalled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop_lag = 0.0
        self.stall_count = 0  # times a name went from alive to stalled (for alerting)

    @classmethod
    def from_settings(
        cls,
        settings: WatchdogSettings,
        *,
        on_stall: StallCallback | None = None,
        on_recover: RecoverCallback | None = None,
    ) -> InternalWatchdog:
        """A watchdog with the intervals of ``settings`` (``[watchdog]`` in the config)."""
        return cls(
            check_interval_seconds=settings.check_interval_seconds,
            loop_timeout_seconds=settings.loop_timeout_seconds,
            spin_polls_per_second=settings.spin_polls_per_second,
            spin_seconds=settings.spin_seconds,
            on_stall=on_stall,
            on_recover=on_recover,
        )

    # -- registration ---------------------------------------------------------------------------

    def register(self, monitored: MonitoredName) -> None:
        """Watch ``monitored`` from now on: if it never pats, it stalls ``timeout_seconds``
        after this call. Registering a name again replaces its timeout and keeps its last
        pat. Loop-only. Raises ConfigError (a ValueError) for :data:`LOOP_NAME` (the
        watchdog's own)."""
        if monitored.name in (LOOP_NAME, SPIN_NAME):
            raise ConfigError(f"{monitored.name!r} is the watchdog's own name for the event loop")
        self._register(monitored)

    def _register(self, monitored: MonitoredName) -> None:
        if monitored.timeout_seconds <= 0:
            raise ConfigError(f"{monitored.name}: timeout must be positive")
        if monitored.name not in self._monitored:
            self._pats[monitored.name] = self._clock()
        self._monitored[monitored.name] = monitored

    def unregister(self, name: str) -> None:
        """Stop watching ``name`` (a thread that ended on purpose). No ``on_recover`` is
        called for a stalled name; an unknown name is ignored. Loop-only."""
        self._monitored.pop(name, None)
        self._pats.pop(name, None)
        self._stalled.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        """The watched names, in registration order."""
        return tuple(self._monitored)

    # -- pats -----------------------------------------------------------------------------------

    def pat(self, name: str) -> None:
        """``name`` is alive now. Loop-only. A name that is not registered is ignored (its
        registered twin, if misspelled, will be reported as silent)."""
        if name in self._monitored:
            self._pats[name] = self._clock()

    def pat_threadsafe(self, name: str) -> None:
        """:meth:`pat` from any thread, without a lock or a loop hop: the membership test and
        the store of one float into a dict are each atomic under the GIL (free-threaded
        builds lock dicts internally), and :meth:`check` only reads the value. A pat that
        races with :meth:`unregister` may leave a stale entry that nothing reads."""
        if name in self._monitored:
            self._pats[name] = self._clock()

    # -- checking -------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Find the names that are silent now, calling ``on_stall``/``on_recover`` for
        those whose state changed since the last check. Returns the stalled names in
        registration order. Loop-only; never raises for a callback's error."""
        now = self._clock()
        stalled: list[str] = []
        for name, monitored in list(self._monitored.items()):
            silent = self._silent(name, now)
            if silent > monitored.timeout_seconds:
                stalled.append(name)
                if name not in self._stalled:
                    self._stalled[name] = silent
                    self.stall_count += 1
                    call_guarded(self._on_stall, name, silent)
            elif name in self._stalled:
                del self._stalled[name]
                call_guarded(self._on_recover, name)
        return stalled

    @property
    def satisfied(self) -> bool:
        """No name was stalled at the last :meth:`check` (call it first for a fresh view)."""
        return not self._stalled

    @property
    def stalled_names(self) -> tuple[str, ...]:
        """The names stalled at the last :meth:`check`."""
        return tuple(self._stalled)

    @property
    def loop_lag_seconds(self) -> float:
        """How late the last timer check ran; 0 before :meth:`start`'s first check."""
        return self._loop_lag

    @property
    def idle_polls_per_second(self) -> float:
        """The loop's idle polls per second between the last two timer checks (0 when
        they cannot be counted)."""
        return self._idle_poll_rate

    def snapshot(self) -> dict[str, WatchdogEntry]:
        """Every watched name with its timeout, silence and stalled flag (as of the last
        :meth:`check`), for status pages. Loop-only; calls no callbacks."""
        now = self._clock()
        return {
            name: WatchdogEntry(
                name=name,
                timeout_seconds=monitored.timeout_seconds,
                silent_seconds=self._silent(name, now),
                stalled=name in self._stalled,
            )
            for name, monitored in self._monitored.items()
        }

    def _silent(self, name: str, now: float) -> float:
        if name == LOOP_NAME:
            return self._loop_lag
        # A pat from another thread may carry a clock reading a hair newer than ``now``.
        return max(0.0, now - self._pats.get(name, now))

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        """Register :data:`LOOP_NAME` and check every ``check_interval_seconds``.

        Loop-only: raises RuntimeError outside a running loop, StateError if started twice.
        """
        if self._timer is not None:
            raise StateError("internal watchdog already started")
        self._loop = asyncio.get_running_loop()
        self._loop_lag = 0.0
        self._idle_poll_rate = 0.0
        self._register(MonitoredName(LOOP_NAME, self.loop_timeout_seconds))
        self._polls = PollCounter.install(self._loop)
        if self._polls is not None:
            self._polls_at = (self._polls.idle_polls, self._loop.time())
            self._register(MonitoredName(SPIN_NAME, self.spin_seconds))
        self._schedule()

    def stop(self) -> None:
        """Cancel the periodic check and forget :data:`LOOP_NAME`. Idempotent; the other
        names stay registered, so :meth:`start` may be called again. Loop-only."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.unregister(LOOP_NAME)
        self.unregister(SPIN_NAME)
        if self._polls is not None:
            self._polls.uninstall()
            self._polls = None

    def _schedule(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.check_interval_seconds, self._on_timer)

    def _on_timer(self) -> None:
        assert self._loop is not None and self._timer is not None
        # Lag against the loop's own clock, the one the timer was scheduled on; the timer may
        # run up to one clock resolution early, hence the floor at zero.
        self._loop_lag = max(0.0, self._loop.time() - self._timer.when())
        self._pats[LOOP_NAME] = self._clock()
        self._check_spin()
        # Schedule first, so the check (and its callbacks) cannot end the watchdog.
        self._schedule()
        self.check()

    def _check_spin(self) -> None:
        """Pat :data:`SPIN_NAME` unless the loop polled idly too often since the last check."""
        if self._polls is None or self._loop is None:
            return
        polls, now = self._polls.idle_polls, self._loop.time()
        last_polls, last_time = self._polls_at
        self._polls_at = (polls, now)
        if now <= last_time:
            return
        self._idle_poll_rate = (polls - last_polls) / (now - last_time)
        if self._idle_poll_rate < self.spin_polls_per_second:
            self._pats[SPIN_NAME] = self._clock()
