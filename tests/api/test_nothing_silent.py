"""Documented forms that used to be accepted and then silently do something else."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gwproactor import (
    ActorSettings,
    ExternalWatchdogCommandBuilder,
    Proactor,
    ProactorSettings,
    SyncAsyncInteractionThread,
    SyncThreadActor,
)
from gwproactor.config import WatchdogSettings
from gwproactor.watchdog import PatOutcome
from tests.helpers import running

SHELL_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


async def test_configured_external_command_runs_without_any_environment_gate(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "patted"
    name = "site-1"
    variable = ExternalWatchdogCommandBuilder.service_variable_name(name)
    assert variable not in os.environ
    settings = ProactorSettings(
        name=name,
        watchdog=WatchdogSettings(
            external_command=["sh", "-c", f"touch '{marker}'"],
            external_interval_seconds=3600,
        ),
    )
    proactor = Proactor(settings)
    async with running(proactor):
        assert proactor.patter.interval_seconds == 3600
        assert await proactor.patter.pat_once() is PatOutcome.sent
    assert marker.exists()


def test_sync_thread_actor_third_argument_is_the_thread() -> None:
    services = Proactor(ProactorSettings(name="gw"))
    thread = SyncAsyncInteractionThread(name="io")
    actor = SyncThreadActor("dev", services, thread)
    assert actor.thread is thread
    with pytest.raises(TypeError, match="third argument is the worker thread"):
        SyncThreadActor("dev", services, ActorSettings(cls="x:Y"))  # type: ignore[arg-type]
    settings = ActorSettings(cls="x:Y", options={"a": 1})
    assert SyncThreadActor("dev2", services, settings=settings).actor_settings is settings


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("gwproactor", "GWPROACTOR_RUNNING_AS_SERVICE"),
        ("site-1", "SITE_1_RUNNING_AS_SERVICE"),
        ("plant.north_2", "PLANT_NORTH_2_RUNNING_AS_SERVICE"),
        ("9lives", "_9LIVES_RUNNING_AS_SERVICE"),
    ],
)
def test_service_variable_name_is_a_shell_variable(
    name: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ExternalWatchdogCommandBuilder.service_variable_name(name) == variable
    assert SHELL_VARIABLE.fullmatch(variable)
    monkeypatch.setenv(variable, "1")
    assert ExternalWatchdogCommandBuilder.running_as_service(name)
    assert ExternalWatchdogCommandBuilder.pat_args(name, ["pat"], 1) == ["pat"]
