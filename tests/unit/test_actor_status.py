"""Actors in status: kind, state, messages, errors (thread errors counted and logged once),
last error and last message times, monitored names and their last pat; in /status, the
page, the metrics and the CLI rendering."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from rich.console import Console

from gwproactor import Message, Proactor, ProactorSettings, ServicesInterface
from gwproactor.actor.sync_thread import SyncAsyncInteractionThread, SyncThreadActor
from gwproactor.cli._status import render_status
from gwproactor.web import render_metrics
from gwproactor.web._page import render_page
from tests.helpers import TIMEOUT, Hello, Raiser, Recorder, Reply, running, wait_until

SENT = 10


class FlakyThread(SyncAsyncInteractionThread):
    """Fails on odd numbers; answers even ones with Reply to the collector."""

    def __init__(self) -> None:
        super().__init__("flaky", iterate_seconds=3600.0, pat_timeout_seconds=30.0)

    def _ext_handle_message(self, message: Any) -> None:
        n = message.payload.n
        if n % 2:
            raise OSError(f"device read failed ({n})")
        self._ext_send_to_loop(Message.create("flaky", "collector", Reply(n=n)))


class Flaky(SyncThreadActor):
    def __init__(self, name: str, services: ServicesInterface) -> None:
        super().__init__(name, services, FlakyThread())


async def test_actor_entries_count_thread_errors_once(caplog: pytest.LogCaptureFixture) -> None:
    proactor = Proactor(ProactorSettings(name="gw1"))
    flaky, collector = Flaky("flaky", proactor), Recorder("collector", proactor)
    for communicator in (flaky, collector, Raiser("bad", proactor)):
        proactor.add_communicator(communicator)
    started = time.time()
    caplog.set_level(logging.DEBUG)
    async with running(proactor):
        with proactor.listener("message.dispatched", lambda e: e.source == "collector") as seen:
            for n in range(SENT + 1):  # 0..10: the last one is even, answered last
                proactor.send(Message.create("test", "flaky", Hello(n=n)))
            proactor.send(Message.create("test", "bad", Hello(n=1)))
            await wait_until(lambda: len(collector.received) == SENT // 2 + 1, seen, TIMEOUT)
        status = proactor.status()
        actors = status["actors"]
    worker = actors["flaky"]
    assert (worker["kind"], worker["state"], worker["class"]) == ("thread", "running", "Flaky")
    assert worker["messages"] == SENT + 1
    # The thread counts a message once its handler returned: the last reply may reach the
    # loop before the thread has counted the message that sent it.
    assert worker["thread_handled"] in (SENT, SENT + 1)
    assert worker["errors"] == SENT // 2
    assert worker["last_error"] == "OSError: device read failed (9)"
    assert started <= worker["last_error_time"] <= time.time()
    assert started <= worker["last_message_time"] <= time.time()
    (pat,) = worker["monitored"].values()
    assert pat["stalled"] is False and started - 1 <= pat["last_pat"] <= time.time()
    assert (actors["collector"]["kind"], actors["collector"]["state"]) == ("loop", "running")
    assert actors["collector"]["errors"] == 0 and actors["collector"]["last_error"] is None
    assert actors["bad"]["errors"] == 1 and actors["bad"]["last_error"].startswith("RuntimeError")
    # Logged once: the (rate-limited) problem report, not the thread and the report both.
    thread_errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and "device read" in r.getMessage()
    ]
    assert len(thread_errors) == 1, [r.getMessage() for r in thread_errors]
    # The same numbers everywhere an operator looks.
    metrics = render_metrics(status)
    assert 'gwproactor_actor_errors_total{actor="flaky"} 5' in metrics
    assert 'gwproactor_actor_messages_total{actor="flaky"} 11' in metrics
    assert 'gwproactor_actor_running{actor="flaky",kind="thread"} 1' in metrics
    page = render_page(status, 2.0)
    assert 'data-actor="flaky" data-state="running"' in page
    assert "OSError: device read failed (9)" in page
    console = Console(width=200, record=True)
    console.print(render_status(status))
    text = console.export_text()
    assert "flaky" in text and "thread" in text and "device read failed (9)" in text


async def test_stopped_thread_actor_shows_its_state() -> None:
    proactor = Proactor(ProactorSettings(name="gw1"))
    proactor.add_communicator(Flaky("flaky", proactor))
    assert proactor.status()["actors"]["flaky"]["state"] == "not_started"
    async with running(proactor):
        pass
    assert proactor.status()["actors"]["flaky"]["state"] == "stopped"
