"""What the store logs at a gateway's start and stop: under the public logger name
``gwproactor.store`` (not a private module's), and no state line at INFO."""

from __future__ import annotations

import logging

import pytest

from gwproactor import Proactor, ProactorSettings
from tests.helpers import REGISTRY, running


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
