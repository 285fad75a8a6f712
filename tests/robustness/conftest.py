"""The ``--soak-seconds`` option of the soak test (tests/robustness/test_soak.py).

pytest registers options only from the conftest files it loads at start-up, which are the
ones on the paths given on the command line: pass the option together with a path in this
directory, e.g. ``pytest tests/robustness --soak-seconds 600``.
"""

from __future__ import annotations

import pytest

DEFAULT_SOAK_SECONDS = 180.0  # "a few minutes in CI"; longer with --soak-seconds
SOAK_OVERHEAD_SECONDS = 90.0  # warm-up, draining and stopping, on top of the soak itself


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-seconds",
        type=float,
        default=DEFAULT_SOAK_SECONDS,
        help=f"how long the soak test runs its traffic (default {DEFAULT_SOAK_SECONDS:g} s)",
    )


def soak_seconds(config: pytest.Config) -> float:
    """The ``--soak-seconds`` value (its default when the option was not registered)."""
    return float(config.getoption("soak_seconds", default=DEFAULT_SOAK_SECONDS))


@pytest.fixture
def soak_duration(request: pytest.FixtureRequest) -> float:
    """Seconds of traffic the soak test runs (``--soak-seconds``)."""
    return soak_seconds(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the soak a per-test timeout that fits the requested duration."""
    for item in items:
        if item.path.name == "test_soak.py":
            item.add_marker(pytest.mark.timeout(soak_seconds(config) + SOAK_OVERHEAD_SECONDS))
