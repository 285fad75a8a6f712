"""gwproto links against real gridworks-proactor 4.1.13 processes on a private mosquitto.

Names are dotted on both sides (the 4.x fleet's long names), so every topic level goes
through gwproto's '.'-as-'-' mapping. Figures (events, duplicates removed, time to active)
are printed as ``FIGURE`` lines (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from gwproactor_actors.gwproto import PowerWatts, SiteReading
from result import Ok

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings
from gwproactor.testing.mosquitto import Mosquitto
from gwproactor.wire.gwproto import GwprotoCodec
from gwproactor.wire.message import Header
from gwproactor.wire.registry import default_registry
from tests.gwproto.conftest import PeerFactory
from tests.gwproto.peer_env import Gw4Peer, PeerReport
from tests.helpers import EventRecorder, Recorder, is_state, running, wait_active

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

SCADA = "hw1.isone.me.versant.keene.beech.scada"
ATN = "hw1.isone.me.versant.keene.beech"
ATN_PARENT = "hw1.isone.me.versant.keene"  # the top of the three-level tree
READING = SiteReading.type_name
UNKNOWN = "gridworks.event.test.unknown.kind"
N = 40
T = 45.0  # generous: 4.1.13 reconnects on its own schedule, and the machine is shared


def figure(test: str, **values: Any) -> None:
    print(f"FIGURE {test}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def broker(port: int) -> BrokerSettings:
    return BrokerSettings(port=port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)


def gwproto_link(port: int, **kwargs: Any) -> LinkSettings:
    return LinkSettings(codec="gwproto", broker=broker(port), **kwargs)


def our_parent(port: int, **link: Any) -> Proactor:
    """Our ATN: a downstream gwproto link to a 4.1.13 SCADA."""
    links = {
        "scada": gwproto_link(
            port, peer=SCADA, role="downstream", short_name="a", peer_short_name="s", **link
        )
    }
    return Proactor(ProactorSettings(name=ATN, links=links), _registry())


def our_child(port: int, **link: Any) -> Proactor:
    """Our SCADA: an upstream gwproto link to a 4.1.13 ATN."""
    links = {
        "atn": gwproto_link(
            port, peer=ATN, role="upstream", short_name="s", peer_short_name="a", **link
        )
    }
    return Proactor(ProactorSettings(name=SCADA, links=links), _registry())


def _registry() -> Any:
    registry = default_registry()
    registry.register(PowerWatts, SiteReading)
    return registry


def peer_child(port: int, **kw: Any) -> dict[str, Any]:
    return dict(
        role="child", port=port, long_name=SCADA, short_name="s",
        peer_long_name=ATN, peer_short_name="a", **kw,
    )  # fmt: skip


def peer_parent(port: int, **kw: Any) -> dict[str, Any]:
    return dict(
        role="parent", port=port, long_name=ATN, short_name="a",
        peer_long_name=SCADA, peer_short_name="s", **kw,
    )  # fmt: skip


def readings(recorder: EventRecorder) -> list[int]:
    return sorted(e.Seq for e in recorder.events if isinstance(e, SiteReading))


async def drained(proactor: Proactor, timeout: float = T) -> None:
    """Until the store holds no pending event (acked events are deleted a moment after
    their ack, by the store's writer thread)."""
    deadline = time.monotonic() + timeout
    while await pending_events(proactor):
        if time.monotonic() > deadline:
            raise TimeoutError("store not drained")
        await asyncio.sleep(0.05)


async def poll(condition: Callable[[], bool], timeout: float = T, what: str = "") -> None:
    """For conditions that span both processes (each side's own waits are event-driven,
    but nothing wakes us when the *pair* agrees): check every 50 ms until true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what or "condition not reached")
        await asyncio.sleep(0.05)


async def pending_events(proactor: Proactor) -> int:
    return len(await proactor.query_events(pending=True, limit=10_000))


def assert_pings_acked(peer: Gw4Peer) -> None:
    """Every gridworks.ping the 4.1.13 side sent was acked (none left waiting)."""
    pings = {r["id"] for r in peer.of_kind("sent") if r["type"] == "gridworks.ping"}
    acked = {r["id"] for r in peer.of_kind("acked")}
    assert pings, "the 4.1.13 peer sent no ping"
    assert pings <= acked, f"pings not acked: {pings - acked}"


def _pings_acked(peer: Gw4Peer, pings: list[PeerReport]) -> bool:
    """Every one of ``pings`` (the peer's ``sent`` reports) has its ``acked`` report."""
    return {r["id"] for r in pings} <= {r["id"] for r in peer.of_kind("acked")}


def _pings_sent(peer: Gw4Peer) -> list[PeerReport]:
    return [r for r in peer.of_kind("sent") if r["type"] == "gridworks.ping"]


def _ping_acks_sent(peer: Gw4Peer) -> list[PeerReport]:
    return [r for r in peer.of_kind("ack_sent") if r["type"] == "gridworks.ping"]


async def exchange_app_messages(ours: Proactor, link: str, peer: Gw4Peer) -> None:
    """One power.watts each way, both ack-required and both acked."""
    inbox = Recorder("watts", ours)
    ours.add_communicator(inbox)
    ours.route(PowerWatts.type_name, "watts")
    with ours.listener("link.acked") as acks:
        message = ours.link(link).message(PowerWatts(Watts=1234), ack_required=True)
        assert ours.link(link).publish(message).is_ok()
        await acks.wait_for(lambda e: e.data["message_id"] == message.header.message_id, T)
    await peer.wait_for(lambda r: r.kind == "received" and r["type"] == "power.watts", T)
    got = peer.received("power.watts")[0]
    assert got["payload"] == {"Watts": 1234, "TypeName": "power.watts", "Version": "000"}
    assert got["id"] == message.header.message_id
    peer.send(cmd="message", watts=-5)
    sent = await _one(peer, "message_sent")
    await peer.wait_for(lambda r: r.kind == "acked" and r["id"] == sent["id"], T)
    await poll(lambda: len(inbox.received) == 1, what="power.watts from 4.1.13")
    assert inbox.received[0].payload == PowerWatts(Watts=-5)
    assert inbox.received[0].header.message_id == sent["id"]


async def _one(peer: Gw4Peer, kind: str) -> Any:
    await peer.wait_for(lambda r: r.kind == kind, T)
    return peer.of_kind(kind)[-1]


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "4.1.13-first"])
async def test_gw4_child_to_our_parent(
    mosquitto: Mosquitto, gw4_peer: PeerFactory, ours_first: bool
) -> None:
    parent = our_parent(mosquitto.port)
    recorder = EventRecorder("recorder", parent)
    parent.add_communicator(recorder)
    parent.route(READING, "recorder")
    started = time.monotonic()
    async with running(parent):
        if ours_first:
            await poll(lambda: parent.link("scada").transport.all_subscribed)
        async with gw4_peer(**peer_child(mosquitto.port)) as peer:
            await wait_active(parent, "scada", T)
            await peer.wait_for(lambda: peer.state == "active", T)
            to_active = time.monotonic() - started
            peer.send(cmd="events", n=N, type=READING, fields={"Channel": "t1", "Value": 2.5})
            await poll(lambda: readings(recorder) == list(range(N)), what="all events delivered")
            await poll(lambda: peer.pending == 0, what="4.1.13 store drained")
            await exchange_app_messages(parent, "scada", peer)
            assert_pings_acked(peer)
            assert parent.link("scada").stats.pings_sent >= 1
            assert parent.link("scada").stats.ack_timeouts == 0
            assert peer.decode_problems() == []
            assert parent.link("scada").stats.decode_errors == {}
            assert parent.link("scada").active and peer.state == "active"
    assert len(recorder.events) == N  # exactly once to the actor
    figure(
        f"child(4.1.13)->parent(ours) {'ours-first' if ours_first else '4.1.13-first'}",
        events=N,
        duplicates_removed=parent.stats.events_duplicate, time_to_active_s=f"{to_active:.2f}",
    )  # fmt: skip


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "4.1.13-first"])
async def test_our_child_to_gw4_parent(
    mosquitto: Mosquitto, gw4_peer: PeerFactory, ours_first: bool
) -> None:
    child = our_child(mosquitto.port)
    started = time.monotonic()
    async with running(child):
        if ours_first:
            await poll(lambda: child.link("atn").transport.all_subscribed)
        async with gw4_peer(**peer_parent(mosquitto.port)) as peer:
            await wait_active(child, "atn", T)
            await peer.wait_for(lambda: peer.state == "active", T)
            to_active = time.monotonic() - started
            for n in range(N):
                result = await child.generate_event(SiteReading(Channel="t1", Value=n, Seq=n))
                assert isinstance(result, Ok)
            await poll(lambda: len(peer.received(READING)) >= N, what="4.1.13 got every event")
            await poll(lambda: child.events.uploader is not None and not _inflight(child))
            await drained(child)
            got = peer.received(READING)
            assert sorted(r["payload"]["Seq"] for r in got) == list(range(N))
            assert len({r["id"] for r in got}) == N  # exactly once: no re-sends
            first = got[0]["payload"]
            assert first["Src"] == SCADA and first["MessageId"] == got[0]["id"]
            assert isinstance(first["TimeCreatedMs"], int)
            await exchange_app_messages(child, "atn", peer)
            assert_pings_acked(peer)
            assert child.link("atn").stats.ack_timeouts == 0
            assert peer.decode_problems() == []
            assert child.link("atn").stats.decode_errors == {}
    figure(
        f"child(ours)->parent(4.1.13) {'ours-first' if ours_first else '4.1.13-first'}",
        events=N, duplicates_at_peer=len(got) - N, time_to_active_s=f"{to_active:.2f}",
    )  # fmt: skip


def _inflight(proactor: Proactor) -> int:
    uploader = proactor.events.uploader
    return 0 if uploader is None else uploader.in_flight


async def test_tree_unknown_event_type_reaches_gw4_parent_field_for_field(
    mosquitto: Mosquitto, gw4_peer: PeerFactory
) -> None:
    """4.1.13 SCADA -> our ATN (middle) -> 4.1.13 parent: every field of an event type
    nobody in the middle knows arrives unchanged."""
    links = {
        "scada": gwproto_link(
            mosquitto.port, peer=SCADA, role="downstream", short_name="a", peer_short_name="s"
        ),
        "up": gwproto_link(
            mosquitto.port, peer=ATN_PARENT, role="upstream", short_name="a",
            peer_short_name="p",
        ),
    }  # fmt: skip
    middle = Proactor(ProactorSettings(name=ATN, links=links), _registry())
    top_args = {
        "role": "parent", "port": mosquitto.port, "long_name": ATN_PARENT, "short_name": "p",
        "peer_long_name": ATN, "peer_short_name": "a",
    }  # fmt: skip
    fields = {"Nested": {"A": [1, 2.5, None], "B": "ü"}, "Version": "007", "Flag": True}
    async with (
        running(middle),
        gw4_peer(**top_args) as top,
        gw4_peer(**peer_child(mosquitto.port)) as bottom,
    ):
        await wait_active(middle, "scada", T)
        await wait_active(middle, "up", T)
        bottom.send(cmd="events", n=5, type=UNKNOWN, fields=fields)
        await poll(lambda: len(top.received(UNKNOWN)) >= 5, what="unknown events at the top")
        sent = {r["id"]: r["payload"] for r in bottom.of_kind("generated") if r["type"] == UNKNOWN}
        got = {r["id"]: r["payload"] for r in top.received(UNKNOWN)}
        assert got == sent  # field for field, ids included
        # The middle sent them (4.1.13 shows an event's own Src as the header's on decode).
        topics = {r["topic"] for r in top.received(UNKNOWN)}
        assert topics == {f"gw/{ATN.replace('.', '-')}/to/p/{UNKNOWN.replace('.', '-')}"}
        await poll(lambda: bottom.pending == 0 and _inflight(middle) == 0, what="stores drained")
        assert top.decode_problems() == [] and bottom.decode_problems() == []
    figure("tree 4.1.13->ours->4.1.13", unknown_events=len(got))


async def test_gw4_events_cross_a_native_link_with_every_field(
    mosquitto: Mosquitto, gw4_peer: PeerFactory
) -> None:
    """4.1.13 SCADA -> our ATN (gwproto down, native up) -> our cloud gateway: the cloud
    stores every event with all of 4.x's fields (plus our src/time_ns), and a gwproto
    codec would give the 4.x payload back unchanged."""
    cloud_name = "cloud.site"
    down = gwproto_link(
        mosquitto.port, peer=SCADA, role="downstream", short_name="a", peer_short_name="s"
    )
    up = LinkSettings(peer=cloud_name, role="upstream", broker=broker(mosquitto.port))
    middle = Proactor(ProactorSettings(name=ATN, links={"scada": down, "cloud": up}), _registry())
    cloud_link = LinkSettings(peer=ATN, role="downstream", broker=broker(mosquitto.port))
    cloud = Proactor(ProactorSettings(name=cloud_name, links={"atn": cloud_link}), _registry())
    fields = {"Nested": {"A": [1, 2.5, None]}, "Version": "007"}
    async with running(cloud, middle), gw4_peer(**peer_child(mosquitto.port)) as bottom:
        await wait_active(middle, "scada", T)
        await wait_active(middle, "cloud", T)
        bottom.send(cmd="events", n=5, type=UNKNOWN, fields=fields)
        sent = {}
        await poll(lambda: len(bottom.of_kind("generated")) >= 5)
        sent = {r["id"]: r["payload"] for r in bottom.of_kind("generated") if r["type"] == UNKNOWN}

        async def stored() -> dict[str, Any]:
            events = await cloud.query_events(UNKNOWN, limit=100)
            return {e.event_id: json.loads(e.payload) for e in events}

        deadline = time.monotonic() + T
        while len(got := await stored()) < 5:
            assert time.monotonic() < deadline, "events did not reach the cloud"
            await asyncio.sleep(0.05)
        await poll(lambda: bottom.pending == 0 and _inflight(middle) == 0, what="drained")
    assert set(got) == set(sent)
    for event_id, payload in got.items():
        assert payload["src"] == SCADA
        assert payload["time_ns"] == sent[event_id]["TimeCreatedMs"] * 1_000_000
        assert {k: v for k, v in payload.items() if k not in ("src", "time_ns")} == sent[event_id]
        gw = GwprotoCodec(
            _registry(), gateway=cloud_name, short_name="c", peer="x", peer_short_name="p"
        )
        header = Header.model_construct(
            src=cloud_name, dst="x", message_type=UNKNOWN, message_id=event_id,
            ack_required=True, actor="",
        )  # fmt: skip
        out = gw.encode_with_payload_json(header, json.dumps(payload).encode())
        assert json.loads(out)["Payload"] == sent[event_id]
    assert middle.stats.events_received >= 5 and cloud.link("atn").stats.decode_errors == {}
    figure("4.1.13->ours(gwproto/native)->ours", events=len(got))


async def test_restart_and_paused_acks_gw4_child(
    mosquitto: Mosquitto, gw4_peer: PeerFactory
) -> None:
    """4.1.13 child -> our parent: a broker restart mid-upload, then our acks withheld for
    a while; 4.1.13 re-sends, our actors see every event once, its store drains.

    After an ack timeout 4.1.13 waits for any message from us before it re-sends; we
    ping every ``poll_seconds`` (2 s here instead of 20 s, to keep the test short)."""
    parent = our_parent(mosquitto.port, poll_seconds=2.0)
    recorder = EventRecorder("recorder", parent)
    parent.add_communicator(recorder)
    parent.route(READING, "recorder")
    link = parent.link("scada")
    async with running(parent), gw4_peer(**peer_child(mosquitto.port, ack_timeout=1.0)) as peer:
        await wait_active(parent, "scada", T)
        await peer.wait_for(lambda: peer.state == "active", T)
        peer.send(cmd="events", n=N, type=READING)
        await poll(lambda: len(recorder.events) >= 5, what="upload under way")
        await mosquitto.akill()
        await peer.wait_for(lambda: peer.state != "active", T)
        peer.send(cmd="events", n=N, type=READING, fields={"Batch": 2})  # stored meanwhile
        await mosquitto.arestart()
        await poll(lambda: len(recorder.events) == 2 * N, what="all events after restart")
        # Our acks withheld: 4.1.13 times out, drops to awaiting_peer and re-sends.
        send_ack = link.send_ack
        link.send_ack = lambda header: None  # type: ignore[method-assign]
        try:
            peer.send(cmd="events", n=10, type=READING, fields={"Batch": 3})
            await peer.wait_for(lambda: peer.state == "awaiting_peer", T)
        finally:
            link.send_ack = send_ack  # type: ignore[method-assign]
        await poll(lambda: len(recorder.events) == 2 * N + 10, what="events after the pause")
        await poll(lambda: peer.pending == 0, what="4.1.13 store drained")
        await peer.wait_for(lambda: peer.state == "active", T)
        assert len(recorder.events) == 2 * N + 10
        assert peer.decode_problems() == []
    assert parent.stats.events_duplicate > 0  # 4.1.13 did re-send; the store removed them
    figure(
        "restart+paused acks, 4.1.13 child",
        events=len(recorder.events), duplicates_removed=parent.stats.events_duplicate,
    )  # fmt: skip


async def test_restart_and_paused_acks_gw4_parent(
    mosquitto: Mosquitto, gw4_peer: PeerFactory
) -> None:
    """Our child -> 4.1.13 parent: a broker restart mid-upload and the parent's acks
    withheld for a while; our store drains and the parent has every event."""
    child = our_child(mosquitto.port, ack_timeout_seconds=1.0)
    async with running(child), gw4_peer(**peer_parent(mosquitto.port)) as peer:
        await wait_active(child, "atn", T)
        for n in range(N):
            await child.generate_event(SiteReading(Seq=n))
        await poll(lambda: len(peer.received(READING)) >= 5, what="upload under way")
        with child.listener("link.state") as states:
            await mosquitto.akill()
            await states.wait_for(is_state("connecting"), T)
            for n in range(N, 2 * N):
                await child.generate_event(SiteReading(Seq=n))
            await mosquitto.arestart()
            await states.wait_for(is_state("active"), T)
        await poll(lambda: _seqs(peer) >= set(range(2 * N)), what="every event at 4.1.13")
        peer.send(cmd="pause_acks")
        with child.listener("link.state") as states:
            for n in range(2 * N, 2 * N + 10):
                await child.generate_event(SiteReading(Seq=n))
            await states.wait_for(is_state("awaiting_peer"), T)
            peer.send(cmd="resume_acks")
            await states.wait_for(is_state("active"), T)
        await poll(lambda: _seqs(peer) == set(range(2 * N + 10)), what="all at 4.1.13")
        await poll(lambda: _inflight(child) == 0, what="nothing in flight")
        await drained(child)
        assert peer.decode_problems() == []
        resent = len(peer.received(READING)) - (2 * N + 10)
    figure("restart+paused acks, 4.1.13 parent", events=2 * N + 10, resent_to_peer=resent)


def _seqs(peer: Gw4Peer) -> set[int]:
    return {int(r["payload"]["Seq"]) for r in peer.received(READING)}


async def test_idle_with_pings_no_decode_problems(
    mosquitto: Mosquitto, gw4_peer: PeerFactory
) -> None:
    """Two idle links (the issue's two minutes shortened by shortening the ping intervals):
    on one we ping every 0.5 s (4.1.13 only answers, its own timer never runs out), on the
    other 4.1.13 pings every 0.5 s (ours is set long). No ProblemEvent for anything
    of ours, no ack timeout, no state change, every ping acked."""
    idle_seconds = 6.0
    child = our_child(mosquitto.port, poll_seconds=0.5)  # we ping 4.1.13's parent
    parent = our_parent(mosquitto.port, poll_seconds=60.0)  # 4.1.13's child pings us
    async with (
        running(parent, child),
        gw4_peer(**peer_parent(mosquitto.port, ping_seconds=60.0)) as top,
        gw4_peer(**peer_child(mosquitto.port, ping_seconds=0.5)) as bottom,
    ):
        await wait_active(child, "atn", T)
        await wait_active(parent, "scada", T)
        await top.wait_for(lambda: top.state == "active", T)
        await bottom.wait_for(lambda: bottom.state == "active", T)
        pings_before = child.link("atn").stats.pings_sent
        theirs_before = len(_pings_sent(bottom))
        acks_before = parent.link("scada").stats.acks_sent
        with child.listener("link.state") as c_states, parent.listener("link.state") as p_states:
            await asyncio.sleep(idle_seconds)  # the idle period itself is what is tested
            ours = child.link("atn").stats.pings_sent - pings_before
            theirs = _pings_sent(bottom)
            # A ping sent just before the idle period ended may still be on its way (or
            # its ack): await the acks of every ping sent in it, not "acked by now".
            await bottom.wait_for(lambda: _pings_acked(bottom, theirs), T)
            await top.wait_for(lambda: len(_ping_acks_sent(top)) >= ours, T)
            # Both pairs are SCADA-ATN on one broker, so 4.1.13's ATN acks its SCADA's pings
            # too: count our ATN's own acks (of its pings and of our SCADA's, which it hears).
            ours_to_ack = len(theirs) - theirs_before + ours

            def acked_by_us() -> int:
                return parent.link("scada").stats.acks_sent - acks_before

            await poll(lambda: acked_by_us() >= ours_to_ack, what="our ATN acks every ping")
            changes = [e.data for e in (*c_states.history, *p_states.history)]
        assert changes == []
        assert ours >= idle_seconds / 2 and len(theirs) >= idle_seconds / 2
        assert _pings_acked(bottom, theirs)
        assert len(_ping_acks_sent(top)) >= ours
        assert acked_by_us() >= ours_to_ack
        for peer in (top, bottom):
            assert peer.decode_problems() == []
            assert [r["state"] for r in peer.of_kind("state")][-1] == "active"
        for link in (child.link("atn"), parent.link("scada")):
            assert link.stats.ack_timeouts == 0
            assert link.stats.decode_errors == {}
        assert child.link("atn").acks_pending <= 1
    figure("idle", seconds=idle_seconds, our_pings=ours, pings_from_4_1_13=len(theirs))
