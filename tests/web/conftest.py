"""Fixtures for the web tests: an HTTP client, and Debian's chromium for the page test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import TIMEOUT

_ENSURE_CHROMIUM = Path(__file__).resolve().parents[2] / "scripts" / "_ensure_chromium.sh"
_INSTALL_TIMEOUT = 900.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session, closed at teardown (each request bounded by TIMEOUT)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        yield session


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed by ``scripts/_ensure_chromium.sh`` when missing. Fails
    (does not skip) with the script's output when it cannot be installed."""
    found = shutil.which("chromium")
    if found:
        return Path(found)
    try:
        done = subprocess.run(
            ["/bin/sh", str(_ENSURE_CHROMIUM)],
            capture_output=True,
            text=True,
            timeout=_INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        message = f"cannot run {_ENSURE_CHROMIUM}: {e}"
    else:
        found = shutil.which("chromium")
        if done.returncode == 0 and found:
            return Path(found)
        message = (
            f"chromium is not installed and {_ENSURE_CHROMIUM.name} could not install it "
            f"(exit {done.returncode}); run it as root. Output:\n{done.stdout}{done.stderr}"
        )
    pytest.fail(message, pytrace=False)
