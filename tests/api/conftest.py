"""Fixtures of the API conformance tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.api.checks import Env

if TYPE_CHECKING:
    from tests.support.fixtures import MosquittoFactory


@pytest.fixture
async def env(mosquitto_factory: MosquittoFactory, tmp_path: Path) -> AsyncIterator[Env]:
    environment = Env(mosquitto_factory, tmp_path)
    try:
        yield environment
    finally:
        await environment.close()
