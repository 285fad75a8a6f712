"""Root test configuration: real-broker fixtures, and private state directories."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ("tests.support.fixtures", "tests.support.proxy", "tests.support.interop")


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Whatever a test does to the logging tree (the CLI and setup_logging set category
    levels and attach handlers, in-process) is undone afterwards, so that no later test
    depends on the order tests ran in: levels, propagation, disabled flags and the handlers
    added to named loggers; on the root logger its level and the handlers that are not
    pytest's own (pytest swaps its capture handlers per phase)."""
    manager = logging.Logger.manager
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    disabled_below = manager.disable
    yield
    for name, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        level, handlers, propagate, disabled = saved.get(name, (logging.NOTSET, [], True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.disabled = disabled
    for handler in list(root.handlers):
        if handler not in root_handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(root_level)
    logging.disable(disabled_below)


@pytest.fixture(autouse=True)
def _private_state_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every gateway a test builds keeps its store and logs under the test's tmp_path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
