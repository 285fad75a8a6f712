"""The HTTP poller against an aiohttp server the test owns (127.0.0.1, port 0): readings
become events at the parent; a 500, a timeout, bad JSON and a refused connection are
counted and reported and polling goes on; stop cancels a request in flight and joins fast.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from gwproactor_actors import HttpPoller, HttpReading
from gwproactor_actors.http_poller import PollerOptions, backoff_delay, pick_values
from result import Err, Ok

from gwproactor import ActorSettings, BrokerSettings, ConfigError, Proactor, load_actor
from gwproactor.mqtt import MemoryBroker
from gwproactor.testing.ports import LOOPBACK, free_listen_port
from tests.actors import actors_registry, add_recorder, wait_recorded
from tests.helpers import TIMEOUT, memory_factory, pair_settings, running, wait_active

POLLER_CLASS = "gwproactor_actors.http_poller:HttpPoller"
STOP_TIMEOUT = 2.0


class FakeMeter:
    """An HTTP device whose answers follow a script: ``ok`` (a JSON reading whose value
    counts up), ``500``, ``hang`` (waits on an event nobody sets, until the client gives
    up), ``bad`` (not JSON). Once the script is done it answers ``ok``."""

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.value = 0
        self.requests = 0
        self.hanging = asyncio.Event()  # set when a request starts to hang
        self.never = asyncio.Event()  # never set

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        step = self.script.popleft() if self.script else "ok"
        if step == "500":
            return web.Response(status=500, text="boom")
        if step == "hang":
            self.hanging.set()
            await self.never.wait()
        if step == "bad":
            return web.Response(text='{"data": {"temp": ', content_type="application/json")
        self.value += 1
        return web.json_response({"data": {"temp": self.value, "unit": "C"}, "ok": True})


async def _serve(meter: FakeMeter, port: int = 0) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/meter", meter.handle)
    # handler_cancellation: a hanging handler ends when the poller gives up and closes the
    # connection, so cleanup does not wait for it.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{host}:{bound_port}/meter"


@pytest.fixture
async def meter() -> AsyncIterator[tuple[FakeMeter, str]]:
    fake = FakeMeter()
    runner, url = await _serve(fake)
    try:
        yield fake, url
    finally:
        await runner.cleanup()


def _gateways(options: dict[str, Any]) -> tuple[Proactor, Proactor, HttpPoller]:
    """A parent, and a child with the poller (loaded from settings) and an upstream link."""
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(
        update={
            "stop_timeout_seconds": STOP_TIMEOUT,
            "actors": {"poller": ActorSettings(cls=POLLER_CLASS, options=options)},
        }
    )
    factory = memory_factory(broker)
    parent = Proactor(parent_settings, actors_registry(), transport_factory=factory)
    child = Proactor(child_settings, actors_registry(), transport_factory=factory)
    poller = child.get_communicator_as_type("poller", HttpPoller)
    assert poller is not None
    return parent, child, poller


def _fast(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "url": url,
        "period_seconds": 0.02,
        "timeout_seconds": 0.3,
        "fields": {"temp": "data.temp"},
        "backoff_max_seconds": 0.1,
        "backoff_jitter": 0.0,
        **overrides,
    }


async def test_readings_become_events_and_errors_are_counted_and_reported(
    meter: tuple[FakeMeter, str],
) -> None:
    fake, url = meter
    fake.script.extend(["ok", "500", "hang", "bad", "ok"])
    parent, child, poller = _gateways(_fast(url))
    recorder = add_recorder(parent, HttpReading.type_name)
    with child.listener("problem") as problems:
        async with running(parent, child):
            await wait_active(child, "parent")
            # Polls are sequential: the second reading comes after every scripted error.
            await wait_recorded(parent, recorder, 2)
            assert poller.stats.errors == Counter({"status": 1, "timeout": 1, "json": 1})
            await wait_recorded(parent, recorder, 4)  # and polling goes on
    first, second = recorder.events[:2]
    assert (first.url, first.status, first.values, first.src) == (url, 200, {"temp": 1.0}, "child")
    assert second.values == {"temp": 2.0}
    assert [e.values["temp"] for e in recorder.events[:4]] == [1.0, 2.0, 3.0, 4.0]
    assert first.elapsed_ms > 0
    reports = {
        p.source: p.data["details"] for p in problems.history if p.source.startswith("poller")
    }
    assert reports == {
        "poller: status": f"{url}: HTTP 500 Internal Server Error (1 in a row)",
        "poller: timeout": f"{url}: no answer within 0.3 s (2 in a row)",
        "poller: json": (
            f"{url}: not JSON: Expecting value: line 1 column 19 (char 18) (3 in a row)"
        ),
    }
    assert poller.stats.consecutive_failures == 0
    assert poller.stats.polls == poller.stats.readings + 3
    assert poller.session is None  # closed by join


async def test_refused_connection_is_retried_with_backoff_until_the_server_appears() -> None:
    port = free_listen_port()
    url = f"http://{LOOPBACK}:{port}/meter"
    parent, child, poller = _gateways(_fast(url, period_seconds=0.01, backoff_max_seconds=0.2))
    recorder = add_recorder(parent, HttpReading.type_name)
    fake = FakeMeter()
    # Listening from before the start: the first refusal is the one reported at once.
    with child.listener("problem", lambda e: e.source == "poller: connect") as problems:
        async with running(parent, child):
            report = await problems.get(TIMEOUT)
            runner, _ = await _serve(fake, port)
            try:
                await wait_recorded(parent, recorder, 1)
            finally:
                await runner.cleanup()
    assert "Cannot connect to host" in report.data["details"]
    assert poller.stats.errors["connect"] >= 1
    assert recorder.events[0].values == {"temp": 1.0}


async def test_stop_cancels_a_request_in_flight_and_joins_quickly(
    meter: tuple[FakeMeter, str],
) -> None:
    fake, url = meter
    fake.script.append("hang")
    parent, child, poller = _gateways(_fast(url, timeout_seconds=30.0, backoff_max_seconds=60))
    async with running(parent):
        await child.start()
        try:
            await asyncio.wait_for(fake.hanging.wait(), TIMEOUT)
        finally:
            started = time.monotonic()
            await child.stop_and_join()
            stop_seconds = time.monotonic() - started
    assert stop_seconds < 1.0
    assert poller.session is None
    assert poller.stats.polls == 0  # the cancelled poll is not a failure
    assert fake.requests == 1


# -- fast: parts ---------------------------------------------------------------------------


def test_backoff_grows_to_its_cap_and_resets() -> None:
    delays = [backoff_delay(1.0, n, 2.0, 10.0, 0.0) for n in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(1.0, 10_000, 2.0, 10.0, 0.0) == 10.0  # no overflow
    assert backoff_delay(1.0, 3, 2.0, 10.0, 0.5, rand=lambda: 1.0) == 4.0  # jitter shortens


@pytest.mark.parametrize(
    ("document", "fields", "expected"),
    [
        ({"a": {"b": 1}}, {"x": "a.b"}, Ok({"x": 1.0})),
        ({"s": [{"v": 2.5}]}, {"x": "s.0.v"}, Ok({"x": 2.5})),
        (3, {"x": ""}, Ok({"x": 3.0})),
        ({"a": {}}, {"x": "a.b"}, Err("x: no 'b' in 'a.b'")),
        ({"s": []}, {"x": "s.0"}, Err("x: no '0' in 's.0'")),
        ({"a": True}, {"x": "a"}, Err("x: 'a' is bool, not a number")),
        ({"a": "1"}, {"x": "a"}, Err("x: 'a' is str, not a number")),
        ({"a": float("inf")}, {"x": "a"}, Err("x: 'a' is not finite")),
    ],
)
def test_pick_values(document: Any, fields: dict[str, str], expected: Any) -> None:
    assert pick_values(document, fields) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "url"),
        ({"url": "ftp://x/"}, "is not http:// or https://"),
        ({"url": "http://x/", "period_seconds": 0}, "greater than 0"),
        ({"url": "http://x/", "period_seconds": 60, "backoff_max_seconds": 10}, "at least"),
        ({"url": "http://x/", "json_path": "a.b"}, "json_path"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    proactor = Proactor(pair_settings(BrokerSettings())[1], load_actors=False)
    with pytest.raises(ConfigError, match=message):
        load_actor("poller", ActorSettings(cls=POLLER_CLASS, options=options), proactor)


def test_default_options() -> None:
    options = PollerOptions(url="http://127.0.0.1/x")
    assert options.fields == {"value": "value"}
    assert (options.period_seconds, options.timeout_seconds) == (10.0, 5.0)
