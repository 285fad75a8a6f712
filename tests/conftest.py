"""Root test configuration: real-broker fixtures, and private state directories."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("tests.support.fixtures", "tests.support.proxy", "tests.support.interop")


@pytest.fixture(autouse=True)
def _private_state_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every gateway a test builds keeps its store and logs under the test's tmp_path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
