"""The writer thread's batch outcomes reach the loop in order, through an eventfd the loop
watches (one signal per drain, however many outcomes), or ``call_soon_threadsafe`` where
the loop cannot watch one."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from gwproactor.store import EventStore, StoreSettings, StoreState
from gwproactor.store._mailbox import OutcomeMailbox

needs_eventfd = pytest.mark.skipif(not hasattr(os, "eventfd"), reason="eventfd is Linux-only")


def _post_from_a_thread(mailbox: OutcomeMailbox[int], items: range) -> None:
    """Post ``items`` from another thread and wait for it: the loop runs nothing meanwhile."""

    def post_all() -> None:
        for i in items:
            mailbox.post_threadsafe(i)

    thread = threading.Thread(target=post_all)
    thread.start()
    thread.join()


@needs_eventfd
async def test_outcomes_arrive_in_order_with_one_signal_per_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    done = asyncio.Event()

    def deliver(item: int) -> None:
        got.append(item)
        if len(got) in (100, 150):
            done.set()

    signals = [0]
    real_write = os.eventfd_write

    def counted_write(fd: int, value: int) -> None:
        signals[0] += 1
        real_write(fd, value)

    monkeypatch.setattr(os, "eventfd_write", counted_write)
    mailbox = OutcomeMailbox(loop, deliver)
    mailbox.open()
    assert mailbox.watching
    try:
        _post_from_a_thread(mailbox, range(100))
        assert got == []  # delivered by the loop only
        async with asyncio.timeout(10):
            await done.wait()
        assert got == list(range(100))
        assert signals[0] == 1  # 100 outcomes, one wake-up of the loop
        done.clear()
        _post_from_a_thread(mailbox, range(100, 150))
        async with asyncio.timeout(10):
            await done.wait()
        assert got == list(range(150))
        assert signals[0] == 2
    finally:
        mailbox.close()
    assert not mailbox.watching


@needs_eventfd
async def test_close_delivers_what_is_left() -> None:
    got: list[int] = []
    mailbox = OutcomeMailbox(asyncio.get_running_loop(), got.append)
    mailbox.open()
    _post_from_a_thread(mailbox, range(5))
    mailbox.close()  # before the loop had a chance to drain: delivered here
    assert got == list(range(5))
    mailbox.close()  # idempotent


class _LoopWithoutReaders:
    """A loop that cannot watch file descriptors (as the Windows proactor loop)."""

    def __init__(self) -> None:
        self.posted: list[tuple[Any, ...]] = []

    def add_reader(self, fd: int, callback: Any) -> None:
        raise NotImplementedError

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.posted.append((callback, *args))


def test_without_readers_it_posts_with_call_soon_threadsafe() -> None:
    loop = _LoopWithoutReaders()
    got: list[int] = []
    mailbox = OutcomeMailbox(loop, got.append)  # type: ignore[arg-type]
    mailbox.open()
    assert not mailbox.watching
    mailbox.post_threadsafe(1)
    mailbox.post_threadsafe(2)
    assert loop.posted == [(got.append, 1), (got.append, 2)]
    mailbox.close()  # nothing to close


@needs_eventfd
async def test_a_writer_thread_that_cannot_start_leaves_no_eventfd(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db", StoreSettings())
    before = len(os.listdir("/proc/self/fd"))
    with (
        mock.patch.object(threading.Thread, "start", side_effect=RuntimeError("no thread")),
        pytest.raises(RuntimeError),
    ):
        await store.start()
    assert store.state is StoreState.STOPPED
    assert len(os.listdir("/proc/self/fd")) == before
