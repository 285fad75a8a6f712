"""Two gateways with the same name on one real mosquitto (issue 17, item 6): the same client
id, so the broker throws each out whenever the other connects (a session takeover).

Before: each side logged only "disconnected", and since every connection got its SUBACKs
it counted as good and reset the backoff, so both reconnected every 0.25 s for ever (207
takeovers in 40 s). Now a connection must last ``stable_connection_seconds`` to reset the
backoff, and ``clash_after_drops`` short ones in a row raise a problem naming the id.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import REGISTRY, TIMEOUT, pair_settings, running, wait_active

pytestmark = pytest.mark.broker

DROPS = 3


async def test_same_client_id_twice_is_reported_and_backs_off(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    broker = BrokerSettings(
        port=mosquitto.port,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=2.0,
        reconnect_jitter=0.0,
        stable_connection_seconds=3.0,
        clash_after_drops=DROPS,
    )
    parent_settings, child_settings = pair_settings(broker)
    twins = [
        child_settings.model_copy(
            update={"paths": child_settings.paths.model_copy(update={"state_dir": tmp_path / n})}
        )
        for n in ("a", "b")
    ]
    parent = Proactor(parent_settings, REGISTRY)
    first, second = (Proactor(s, REGISTRY) for s in twins)
    async with running(parent, first):
        await wait_active(first, "parent")
        with first.listener("problem") as problems_1, second.listener("problem") as problems_2:
            async with running(second):
                started = time.monotonic()
                # Each CONNECT throws the other out; whichever notices first reports it.
                problem_1 = problems_1.wait_for(
                    lambda e: e.source == "parent: client_id_clash", TIMEOUT
                )
                problem_2 = problems_2.wait_for(
                    lambda e: e.source == "parent: client_id_clash", TIMEOUT
                )
                done, pending = await asyncio.wait(
                    {asyncio.ensure_future(problem_1), asyncio.ensure_future(problem_2)},
                    return_when=asyncio.FIRST_COMPLETED,
                    timeout=TIMEOUT,
                )
                for task in pending:
                    task.cancel()
                assert done, "no client_id_clash problem"
                event = done.pop().result()
                details = event.data["details"]
                assert "client id child-parent is probably used by another process" in details
                assert f"{DROPS} connections in a row" in details
                # Still backing off: the short connections did not reset it.
                clients = [p.mqtt_clients.client("parent") for p in (first, second)]
                assert max(c.backoff_steps for c in clients) >= DROPS
                assert max(c.stats.short_connections for c in clients) >= DROPS
                connects = sum(c.stats.connects for c in clients)
                print(
                    f"clash reported {time.monotonic() - started:.2f} s after the twin started; "
                    f"{connects} connects in all; backoff steps "
                    f"{[c.backoff_steps for c in clients]}"
                )
        # The twin is gone: the first gateway settles.
        await wait_active(first, "parent", TIMEOUT)
