"""The README's "Writing a thread actor" example, run as written: the module is the README's
code block, loaded by its config as any actor package would be."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from result import Ok, Result

from gwproactor import (
    ActorSettings,
    BrokerSettings,
    Communicator,
    Message,
    MessageRegistry,
    Proactor,
)
from tests.helpers import TIMEOUT, memory_factory, pair_settings, running, wait_active, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
MODULE = "readme_pressure"


def _example() -> str:
    text = README.read_text()
    section = text.split("## Writing a thread actor", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


@pytest.fixture
def example() -> Iterator[types.ModuleType]:
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module
    try:
        exec(compile(_example(), f"README.md:{MODULE}", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[MODULE]


async def test_the_readme_thread_actor_generates_events_and_alarms_the_peer(
    example: types.ModuleType,
) -> None:
    from gwproactor.mqtt import MemoryBroker

    registry = MessageRegistry(example.PressureReading, example.PressureAlarm)
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    actor = ActorSettings.model_validate(
        {
            "class": f"{MODULE}:PressureActor",
            "options": {"period_seconds": 0.02, "alarm_kpa": 100.0, "peer_link": "parent"},
        }
    )
    child_settings = child_settings.model_copy(update={"actors": {"pressure1": actor}})
    parent = Proactor(parent_settings, registry, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, registry, transport_factory=memory_factory(broker))
    seen: list[str] = []

    class Sink(Communicator):
        def process_message(self, message: Message[Any]) -> Result[None, Exception]:
            seen.append(message.payload.type_name)
            return Ok(None)

    parent.add_communicator(Sink("sink", parent))
    parent.route("site.pressure", "sink")
    parent.route("site.pressure.alarm", "sink")
    async with running(parent, child):
        await wait_active(child, "parent")
        with parent.listener("message.dispatched") as dispatched:
            await wait_until(
                lambda: {"site.pressure", "site.pressure.alarm"} <= set(seen), dispatched, TIMEOUT
            )
    assert child.stats.events_generated >= 1


async def test_send_to_peer_threadsafe_outside_its_thread_rules(example: types.ModuleType) -> None:
    from gwproactor.errors import StateError
    from gwproactor.mqtt import MemoryBroker

    registry = MessageRegistry(example.PressureAlarm)
    _, child_settings = pair_settings(BrokerSettings())
    child = Proactor(child_settings, registry, transport_factory=memory_factory(MemoryBroker()))
    alarm = example.PressureAlarm(sensor="p", kpa=1.0)
    assert child.send_to_peer_threadsafe("parent", alarm).is_err()  # not started
    async with running(child):
        with pytest.raises(StateError):
            child.send_to_peer_threadsafe("parent", alarm)  # on the loop: send_to_peer
