"""The idle-poll counter's selector on asyncio's default (epoll) selector: the same ready
list as ``EpollSelector.select``, for less bytecode (the loop selects on every wake-up)."""

from __future__ import annotations

import selectors
import socket
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from gwproactor.watchdog._spin import _CountingSelector
from tests.helpers import count_opcodes

pytestmark = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll: Linux only")

Ready = list[tuple[int, int, object]]


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(4)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def _ready(selected: list[tuple[selectors.SelectorKey, int]]) -> Ready:
    return sorted((key.fd, mask, key.data) for key, mask in selected)


def test_same_ready_list_as_the_epoll_selector(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    inner = selectors.EpollSelector()
    counting = _CountingSelector(inner)
    try:
        interests = [selectors.EVENT_READ, selectors.EVENT_WRITE, 3, selectors.EVENT_READ]
        for i, ((ours, _), events) in enumerate(zip(pairs, interests, strict=True)):
            counting.register(ours, events, data=f"handler {i}")
        assert _ready(counting.select(0)) == _ready(inner.select(0))  # writable ones only
        pairs[0][1].send(b"x")
        pairs[2][1].send(b"y")
        counting.unregister(pairs[3][0])
        expected = _ready(inner.select(0))
        assert {fd for fd, _, _ in expected} == {p[0].fileno() for p in pairs[:3]}
        assert _ready(counting.select(0)) == expected
        assert _ready(counting.select(0.001)) == expected
        assert counting.idle_polls == 0
        for ours, _ in pairs[:3]:
            counting.unregister(ours)
        assert counting.select(0) == []
        assert counting.idle_polls == 1  # zero timeout, nothing ready: an idle poll
        assert counting.select(0.001) == []
        assert counting.idle_polls == 1  # a wait that timed out is not
    finally:
        counting.close()


def test_select_is_one_frame_and_no_more_bytecode_than_epoll_selector_alone(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    """It wrapped ``EpollSelector.select``: three Python frames per wake-up (its own, the
    inner select, ``_key_from_fd`` per ready socket) and 110 opcodes where the inner select
    alone runs 97 (callgrind: ~650 instructions more per wake-up than the inner select;
    now ~20 fewer). Now one frame, and at most the inner select's bytecode."""
    inner = selectors.EpollSelector()
    counting = _CountingSelector(inner)
    try:
        counting.register(pairs[0][0], selectors.EVENT_READ)
        pairs[0][1].send(b"x")
        counting.select(0)
        inner.select(0)
        by_inner = count_opcodes(lambda: inner.select(0.5))
        by_counting = count_opcodes(lambda: counting.select(0.5))
        assert by_counting <= by_inner, (by_counting, by_inner)
        frames: list[str] = []

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code.co_filename != __file__:
                frames.append(frame.f_code.co_name)

        sys.setprofile(profile)
        try:
            selected = counting.select(0.5)
        finally:
            sys.setprofile(None)
        assert len(selected) == 1
        assert frames == ["select"]
    finally:
        counting.close()
