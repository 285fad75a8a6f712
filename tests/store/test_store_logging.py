"""What the store logs at a gateway's start and stop: under the public logger name
``gwproactor.store`` (not a private module's), and no state line at INFO; a commit
callback that raises is a reported problem, not a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from result import Ok, Result

from gwproactor import Proactor, ProactorSettings, StoreError
from tests.helpers import REGISTRY, running
from tests.store._support import (
    PAYLOAD,
    SRC,
    TYPE,
    append,
    eid,
    ok,
    started,
    store_factory,
    wait,
)


async def test_store_logs_under_its_public_name_and_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(Proactor(ProactorSettings(name="solo"), REGISTRY)):
        pass
    store = [r for r in caplog.records if r.name.startswith("gwproactor.store")]
    assert store, "the store logs its state changes at DEBUG"
    assert {r.name for r in store} == {"gwproactor.store"}
    assert [r.getMessage() for r in store if r.levelno >= logging.INFO] == []


async def test_a_commit_callback_that_raises_is_one_reported_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[Result[int, StoreError]] = []

    def broken(result: Result[int, StoreError]) -> None:
        seen.append(result)
        raise RuntimeError("a bug past the commit")

    async with store_factory(tmp_path) as make:
        store, problems = await started(make)
        for i in range(3):
            store.append_then(TYPE, eid(i), 1_000 + i, SRC, PAYLOAD, broken)
        ok(await wait(append(store, 3)))  # answered after the three callbacks
    assert len(seen) == 3
    assert all(isinstance(r, Ok) for r in seen)  # the events are stored all the same
    assert problems.kinds() == ["store.callback_error"] * 3
    assert "RuntimeError: a bug past the commit" in problems.details("store.callback_error")[0]
    loud = [r for r in caplog.records if r.levelno >= logging.INFO and r.exc_info]
    assert loud == []  # no traceback above DEBUG
