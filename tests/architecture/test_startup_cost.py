"""What starting a gateway costs, counted rather than timed (issue 15: start to two links
subscribed within 2x raw paho's time, RSS within 1.6x).

A fresh process imports gwproactor, builds a Proactor with two links and starts it against
a real broker until both links have their subscriptions acknowledged, as the benchmark's
``start-gw`` worker does. Then it must not have imported the parts that such a start does
not run (each loads on first use), and it must have built no more of gwproactor's pydantic
models and dataclasses than the bounds below: each one costs start-up time and memory
(a pydantic model ~0.3-6 ms to build, a dataclass ~0.5-1 ms to generate its methods).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from gwproactor.testing.mosquitto import Mosquitto

NOT_LOADED_BY_A_START = (
    "gwproactor.actor.admin",  # gateways with an admin link
    "gwproactor.actor.sync_thread",  # thread actors
    "gwproactor.cli",
    "gwproactor.config._loader",  # reading config files and the environment
    "pydantic_settings",
    "tomllib",
    "gwproactor.observe.logging_setup",  # the daemon's logging set-up
    "logging.handlers",
    "argparse",
    "gwproactor.runtime._status",  # status snapshots
    "gwproactor.runtime._actor_status",
    "gwproactor.store._salvage",  # a damaged store only
    "gwproactor.testing",
    "gwproactor.web._metrics",  # HTTP
    "gwproactor.web._routes",
    "gwproactor.web._server",
    "aiohttp",
    "gwproactor.wire.gwproto",  # gwproto links
    "gwproactor.mqtt._memory",  # the in-memory transport of tests
)

# Upper bounds of what a start builds (issue 15 brought them down from 30 models and 28
# dataclasses on the way to this start).
MAX_MODELS_BUILT = 23
MAX_DATACLASSES = 16

_CHILD = r"""
import asyncio, dataclasses, json, sys
from pathlib import Path

import gwproactor
from gwproactor import BrokerSettings, LinkSettings, MessageRegistry, Proactor, ProactorSettings
from gwproactor.config import PathSettings

port, state_dir = int(sys.argv[1]), Path(sys.argv[2])


async def main() -> None:
    broker = BrokerSettings(port=port)
    settings = ProactorSettings(
        name="parent",
        links={
            name: LinkSettings(peer=name, role="downstream", broker=broker)
            for name in ("child0", "child1")
        },
        paths=PathSettings(state_dir=state_dir),
    )
    proactor = Proactor(settings, MessageRegistry())
    settled: set[str] = set()

    def both_subscribed(event: gwproactor.CommEvent) -> bool:
        if event.data.get("new") == "awaiting_peer":
            settled.add(event.source)
        return settled == {"child0", "child1"}

    try:
        with proactor.listener("link.state", both_subscribed) as states:
            await proactor.start()
            await asyncio.wait_for(states.get(), 30)
    finally:
        await proactor.stop_and_join()


asyncio.run(main())

import pydantic

gw = [m for name, m in sys.modules.items() if name.startswith("gwproactor") and m is not None]
classes = {
    f"{c.__module__}.{c.__qualname__}": c
    for m in gw
    for c in vars(m).values()
    if isinstance(c, type) and c.__module__ == m.__name__
}
built = sorted(
    name
    for name, c in classes.items()
    if issubclass(c, pydantic.BaseModel)
    and c.__dict__.get("__pydantic_complete__")
    and "Mock" not in type(c.__dict__.get("__pydantic_validator__")).__name__
)
print(json.dumps({
    "modules": sorted(sys.modules),
    "models": built,
    "dataclasses": sorted(n for n, c in classes.items() if dataclasses.is_dataclass(c)),
}))
"""


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("startup-cost")
    (work / "broker").mkdir()
    with Mosquitto(work / "broker", name="startup-cost", log_types=("error",)) as broker:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(broker.port), str(work / "state")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_start_does_not_import_what_it_does_not_run(started: dict[str, Any]) -> None:
    loaded = set(started["modules"])
    assert [name for name in NOT_LOADED_BY_A_START if name in loaded] == []


def test_a_start_builds_few_pydantic_models(started: dict[str, Any]) -> None:
    assert len(started["models"]) <= MAX_MODELS_BUILT, started["models"]


def test_a_start_generates_few_dataclasses(started: dict[str, Any]) -> None:
    assert len(started["dataclasses"]) <= MAX_DATACLASSES, started["dataclasses"]


def test_every_lazy_name_is_importable() -> None:
    code = (
        "import gwproactor, gwproactor.config, gwproactor.mqtt, gwproactor.web\n"
        "for module in (gwproactor, gwproactor.config, gwproactor.mqtt, gwproactor.web):\n"
        "    for name in module.__all__:\n"
        "        getattr(module, name)\n"
        "from gwproactor import SyncThreadActor, load_settings, setup_logging\n"
        "from gwproactor.config import load_settings_with_sources, describe_sources\n"
        "from gwproactor.web import render_metrics, METRIC_NAMES\n"
        "from gwproactor.mqtt import MemoryBroker, MemoryTransport\n"
        "assert 'load_settings' in dir(gwproactor)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]


def test_an_unknown_name_is_an_attribute_error() -> None:
    import gwproactor

    with pytest.raises(AttributeError, match="no_such_name"):
        gwproactor.no_such_name  # noqa: B018
    assert not hasattr(gwproactor.config, "no_such_name")
