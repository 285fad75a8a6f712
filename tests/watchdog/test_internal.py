"""InternalWatchdog: stall and recovery on a fake clock, pats from real threads, and the
event loop's own lag on a real loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from gwproactor import MonitoredName
from gwproactor.config import WatchdogSettings
from gwproactor.errors import StateError
from gwproactor.watchdog import LOOP_NAME, SPIN_NAME, InternalWatchdog, WatchdogEntry
from tests.watchdog import FakeClock

TIMEOUT = 5.0

Event = tuple[str, str]  # ("stall" | "recover", name)


class Recorder:
    """Collects on_stall/on_recover calls as one ordered list."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.silences: list[float] = []

    def stall(self, name: str, silent_seconds: float) -> None:
        self.events.append(("stall", name))
        self.silences.append(silent_seconds)

    def recover(self, name: str) -> None:
        self.events.append(("recover", name))


class AwaitedRecorder(Recorder):
    """A Recorder whose first stall and first recovery each resolve a future to await."""

    def __init__(self) -> None:
        super().__init__()
        loop = asyncio.get_running_loop()
        self.stalled: asyncio.Future[None] = loop.create_future()
        self.recovered: asyncio.Future[None] = loop.create_future()

    def stall(self, name: str, silent_seconds: float) -> None:
        super().stall(name, silent_seconds)
        if not self.stalled.done():
            self.stalled.set_result(None)

    def recover(self, name: str) -> None:
        super().recover(name)
        if not self.recovered.done():
            self.recovered.set_result(None)


# Calls, not attributes, so that mypy does not keep a narrowed bool across state changes.
def satisfied(watchdog: InternalWatchdog) -> bool:
    return watchdog.satisfied


def running(watchdog: InternalWatchdog) -> bool:
    return watchdog.running


def make(clock: FakeClock, recorder: Recorder) -> InternalWatchdog:
    return InternalWatchdog(clock=clock, on_stall=recorder.stall, on_recover=recorder.recover)


def test_never_patted_counts_from_registration() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    clock.advance(100.0)  # time before registration does not count
    watchdog.register(MonitoredName("a", 2.0))
    clock.advance(2.0)
    assert watchdog.check() == []
    assert satisfied(watchdog)
    clock.advance(0.5)
    assert watchdog.check() == ["a"]
    assert not satisfied(watchdog)
    assert recorder.events == [("stall", "a")]
    assert recorder.silences == [2.5]


def test_stall_and_recovery_are_reported_once_each() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    watchdog.register(MonitoredName("a", 2.0))
    watchdog.register(MonitoredName("b", 10.0))
    for _ in range(3):
        clock.advance(1.0)
        watchdog.pat("a")
        assert watchdog.check() == []
    clock.advance(3.0)
    assert watchdog.check() == ["a"]
    clock.advance(1.0)
    assert watchdog.check() == ["a"]  # still stalled, not reported again
    assert watchdog.stalled_names == ("a",)
    watchdog.pat("a")
    assert watchdog.check() == []
    assert watchdog.check() == []
    clock.advance(4.0)  # "b" has now been silent 11 s
    watchdog.pat("a")
    assert watchdog.check() == ["b"]
    assert recorder.events == [("stall", "a"), ("recover", "a"), ("stall", "b")]


def test_unregister_forgets_a_stalled_name_without_recovery() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    watchdog.register(MonitoredName("a", 1.0))
    clock.advance(2.0)
    assert watchdog.check() == ["a"]
    watchdog.unregister("a")
    watchdog.unregister("never-registered")
    assert satisfied(watchdog)
    assert watchdog.check() == []
    assert watchdog.names == ()
    assert recorder.events == [("stall", "a")]


def test_register_again_keeps_last_pat_and_pat_of_unknown_is_ignored() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    watchdog.register(MonitoredName("a", 1.0))
    clock.advance(3.0)
    watchdog.register(MonitoredName("a", 5.0))  # wider timeout, same last pat
    assert watchdog.check() == []
    clock.advance(2.5)
    assert watchdog.check() == ["a"]
    watchdog.pat("typo")
    watchdog.pat_threadsafe("typo")
    assert watchdog.names == ("a",)


def test_invalid_registrations() -> None:
    watchdog = InternalWatchdog(clock=FakeClock())
    with pytest.raises(ValueError, match="loop"):
        watchdog.register(MonitoredName(LOOP_NAME, 1.0))
    with pytest.raises(ValueError, match="positive"):
        watchdog.register(MonitoredName("a", 0.0))
    with pytest.raises(ValueError, match="positive"):
        InternalWatchdog(check_interval_seconds=0)


def test_snapshot() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    watchdog.register(MonitoredName("a", 2.0))
    watchdog.register(MonitoredName("b", 5.0))
    clock.advance(3.0)
    watchdog.pat("b")
    watchdog.check()
    clock.advance(1.0)
    assert watchdog.snapshot() == {
        "a": WatchdogEntry("a", 2.0, 4.0, stalled=True),
        "b": WatchdogEntry("b", 5.0, 1.0, stalled=False),
    }
    assert recorder.events == [("stall", "a")]  # a snapshot does not check


def test_callback_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    def broken(name: str, silent_seconds: float) -> None:
        raise RuntimeError("reporter down")

    watchdog = InternalWatchdog(clock=clock, on_stall=broken)
    watchdog.register(MonitoredName("a", 1.0))
    clock.advance(2.0)
    assert watchdog.check() == ["a"]
    assert any("reporter down" in r.getMessage() for r in caplog.records)


def test_default_callbacks_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gwproactor.watchdog")
    clock = FakeClock()
    watchdog = InternalWatchdog(clock=clock)
    watchdog.register(MonitoredName("a", 1.0))
    clock.advance(2.0)
    watchdog.check()
    watchdog.pat("a")
    watchdog.check()
    assert [r.getMessage() for r in caplog.records] == [
        "watchdog: a silent for 2.0 s",
        "watchdog: a patted again",
    ]


def test_from_settings() -> None:
    settings = WatchdogSettings(check_interval_seconds=0.5, loop_timeout_seconds=3.0)
    watchdog = InternalWatchdog.from_settings(settings)
    assert watchdog.check_interval_seconds == 0.5
    assert watchdog.loop_timeout_seconds == 3.0


def test_pat_from_threads() -> None:
    clock, recorder = FakeClock(), Recorder()
    watchdog = make(clock, recorder)
    names = [f"thread.{i}" for i in range(4)]
    for name in names:
        watchdog.register(MonitoredName(name, 1.0))
    clock.advance(2.0)
    assert watchdog.check() == names

    def worker(name: str) -> None:
        for _ in range(10_000):
            watchdog.pat_threadsafe(name)

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert watchdog.check() == []
    assert recorder.events == [("stall", n) for n in names] + [("recover", n) for n in names]


async def test_timer_reports_a_silent_name_and_its_recovery() -> None:
    loop = asyncio.get_running_loop()
    stalled: asyncio.Future[str] = loop.create_future()
    recovered: asyncio.Future[str] = loop.create_future()
    watchdog = InternalWatchdog(
        check_interval_seconds=0.01,
        loop_timeout_seconds=5.0,
        on_stall=lambda name, _: stalled.set_result(name),
        on_recover=recovered.set_result,
    )
    watchdog.register(MonitoredName("worker", 0.05))
    watchdog.start()
    try:
        assert running(watchdog)
        assert list(watchdog.names) == ["worker", LOOP_NAME, SPIN_NAME]
        async with asyncio.timeout(TIMEOUT):
            assert await stalled == "worker"
            assert not satisfied(watchdog)
            watchdog.pat("worker")
            assert await recovered == "worker"
        assert satisfied(watchdog)
    finally:
        watchdog.stop()
    assert not running(watchdog)
    assert watchdog.names == ("worker",)


async def test_loop_lag_is_reported_as_a_stalled_loop() -> None:
    loop = asyncio.get_running_loop()
    recorder = AwaitedRecorder()

    watchdog = InternalWatchdog(
        check_interval_seconds=0.01,
        loop_timeout_seconds=0.1,
        on_stall=recorder.stall,
        on_recover=recorder.recover,
    )
    watchdog.start()
    try:
        # The behaviour under test: a callback that blocks the loop for longer than the
        # loop timeout. The watchdog's timer was due 0.01 s after start, so it runs ~0.29 s late.
        loop.call_soon(time.sleep, 0.3)
        async with asyncio.timeout(TIMEOUT):
            await recorder.stalled
            assert watchdog.stalled_names == (LOOP_NAME,)
            entry = watchdog.snapshot()[LOOP_NAME]
            assert entry.stalled and entry.silent_seconds > 0.1
            await recorder.recovered
    finally:
        watchdog.stop()
    assert recorder.events == [("stall", LOOP_NAME), ("recover", LOOP_NAME)]
    assert 0.1 < recorder.silences[0] < TIMEOUT
    assert watchdog.loop_lag_seconds < 0.1


async def test_a_loop_spinning_with_zero_lag_is_reported() -> None:
    """A callback that re-schedules itself for ever (issue 17, item 7): every timer runs
    on time, so only the rate of idle polls shows it."""
    loop = asyncio.get_running_loop()
    recorder = AwaitedRecorder()

    watchdog = InternalWatchdog(
        check_interval_seconds=0.02,
        loop_timeout_seconds=5.0,
        spin_polls_per_second=2_000,
        spin_seconds=0.2,
        on_stall=recorder.stall,
        on_recover=recorder.recover,
    )
    spinning = True

    def spin() -> None:
        if spinning:
            loop.call_soon(spin)

    watchdog.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            await asyncio.sleep(0.1)  # a quiet loop first: not spinning
            assert watchdog.satisfied and watchdog.idle_polls_per_second < 2_000
            loop.call_soon(spin)
            await recorder.stalled
            assert watchdog.stalled_names == (SPIN_NAME,)
            assert watchdog.idle_polls_per_second > 2_000
            assert watchdog.loop_lag_seconds < 1.0
            spinning = False
            await recorder.recovered
    finally:
        spinning = False
        watchdog.stop()
    assert recorder.events == [("stall", SPIN_NAME), ("recover", SPIN_NAME)]
    assert type(vars(loop)["_selector"]).__name__ != "_CountingSelector"


async def test_start_twice_raises_and_stop_is_idempotent() -> None:
    watchdog = InternalWatchdog()
    watchdog.start()
    try:
        with pytest.raises(StateError):
            watchdog.start()
    finally:
        watchdog.stop()
        watchdog.stop()
    watchdog.start()  # a stopped watchdog may start again
    watchdog.stop()


def test_start_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        InternalWatchdog().start()
