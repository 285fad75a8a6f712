"""A three-node NATS cluster with JetStream (issue 17, item 11): the node a child is connected
to is SIGKILLed in the middle of an upload.

With ``mqtt { stream_replicas: 3 }`` every node holds the MQTT streams (sessions, QoS 1
messages), so the child fails over to the next node of its ``fallback_brokers``, its
persistent session is still there (messages the parent sends while the child is stopped,
after its node died, arrive when it starts again), and every event reaches the parent's
actor exactly once. (With the default of one replica
the streams of the dead node are gone and nothing connects anywhere until it is back.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings
from gwproactor.testing.nats import NatsNotFoundError, find_nats_server
from gwproactor.testing.nats_cluster import NatsCluster
from tests.helpers import (
    REGISTRY,
    Counted,
    Hello,
    Recorder,
    is_state,
    record_events,
    running,
    wait_active,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

log = logging.getLogger(__name__)

TOTAL = 600
KILL_AT = 200
AWAY_MESSAGES = 20
TIMEOUT = 60.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    try:
        find_nats_server()
    except NatsNotFoundError as e:
        pytest.skip(str(e))
    nodes = NatsCluster(tmp_path / "nats", stream_replicas=3)
    try:
        await nodes.astart()
        yield nodes
    finally:
        nodes.kill()


def _broker(port: int) -> BrokerSettings:
    return BrokerSettings(
        port=port,
        topic_dot_escape="~",  # nats-server < 2.10 refuses dots in topics
        clean_session=False,  # a persistent session, kept in the replicated streams
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.5,
        # Longer than nats-server's own 4 s JetStream request timeout: while the streams
        # elect new leaders a CONNACK can take that long, and giving up sooner only makes
        # the gateway hop between nodes.
        connect_timeout_seconds=10.0,
    )


def _link(peer: str, role: str, ports: list[int]) -> LinkSettings:
    first, *rest = ports
    return LinkSettings(
        peer=peer,
        role=role,
        broker=_broker(first),
        fallback_brokers=[_broker(p) for p in rest],
        failover_after_seconds=2.0,
        ack_timeout_seconds=3.0,
    )


async def test_child_fails_over_when_its_node_dies_mid_upload(cluster: NatsCluster) -> None:
    try:
        await _scenario(cluster)
    except BaseException:
        log.error("cluster logs:\n%s", cluster.log_tails(40))
        raise


async def _scenario(cluster: NatsCluster) -> None:
    a, b, c = cluster.ports
    parent = Proactor(
        ProactorSettings(name="parent", links={"child": _link("child", "downstream", [b, c, a])}),
        REGISTRY,
    )
    child_settings = ProactorSettings(
        name="child", links={"parent": _link("parent", "upstream", [a, b, c])}
    )
    child = Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    async with running(parent):
        async with running(child):
            await wait_active(parent, "child", TIMEOUT)
            await wait_active(child, "parent", TIMEOUT)
            with child.listener("link.state") as states:
                for n in range(KILL_AT):
                    child.generate_event(Counted(n=n))
                killed_at = time.monotonic()
                await cluster.node_on(a).akill()  # the child's node, in the middle of the upload
                for n in range(KILL_AT, TOTAL // 2):
                    child.generate_event(Counted(n=n))
                await states.wait_for(is_state("connecting", "parent"), TIMEOUT)
                await states.wait_for(is_state("active", "parent"), TIMEOUT)
                failed_over_in = time.monotonic() - killed_at
                broker_now = child.link("parent").transport.broker_label
            await _delivered(parent, child, recorder.events, TOTAL // 2)
        # The child is stopped; its persistent session lives on in the replicated streams
        # (created while it was on the dead node). What the parent sends now waits there.
        with parent.listener("link.state") as p_states:
            if not parent.link("child").transport.connected():
                await p_states.wait_for(lambda e: e.data["new"] != "connecting", TIMEOUT)
        for n in range(AWAY_MESSAGES):
            assert parent.send_to_peer("child", Hello(n=n), actor="rx").is_ok()
        again = Proactor(child_settings, REGISTRY)  # the same gateway, restarted
        hellos = Recorder("rx", again)
        again.add_communicator(hellos)
        async with running(again):
            await wait_active(again, "parent", TIMEOUT)
            for n in range(TOTAL // 2, TOTAL):
                again.generate_event(Counted(n=n))
            await _delivered(parent, again, recorder.events, TOTAL)
            with again.listener("message.received") as got_hellos:
                await wait_until(lambda: len(hellos.received) >= AWAY_MESSAGES, got_hellos, TIMEOUT)
    assert not broker_now.endswith(f":{a}")
    received = [e.n for e in recorder.events]
    log.info(
        "nats cluster: child failed over to %s in %.2f s; %d events committed, %d delivered, "
        "%d duplicates at the parent (dropped before the actor)",
        broker_now,
        failed_over_in,
        TOTAL,
        len(received),
        parent.stats.events_duplicate,
    )
    print(f"failover {failed_over_in:.2f} s to {broker_now}; delivered {len(received)}/{TOTAL}")
    assert sorted(received) == list(range(TOTAL))  # 0 lost, 0 duplicated to the actor
    assert sorted(m.payload.n for m in hellos.received) == list(range(AWAY_MESSAGES))


async def _delivered(parent: Proactor, child: Proactor, events: list[Any], count: int) -> None:
    """Until the parent's actor has ``count`` events and the child's store is empty."""
    with parent.listener("event.received") as got:
        await wait_until(lambda: len(events) >= count, got, TIMEOUT)
    with child.listener("event.acked") as acked:
        await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
