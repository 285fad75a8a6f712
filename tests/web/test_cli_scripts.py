"""The command line for scripts: full output when piped, ``--json`` everywhere, exit codes
that say ready or not, newest/oldest/follow for events, and the token-protected actions
(reconnect, log-level, restart-actor) over the web routes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from rich.console import Console

from gwproactor import Event
from gwproactor.cli._actions import TOKEN_ENV, action_command
from gwproactor.cli._events import events_command
from gwproactor.cli._status import EXIT_ERROR_ANSWER, EXIT_NOT_READY
from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, Counted, running, wait_active
from tests.web._support import TOKEN, memory_gateway, memory_pair, web_settings

CLI = (sys.executable, "-m", "gwproactor")


class Noted(Event):
    type_name: ClassVar[str] = "test.noted"
    note: str


LONG_LINK = "upstream_link_with_a_name_much_longer_than_a_terminal_column_allows_for_it"


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The real command in a child process, stdout a pipe (not a terminal)."""
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=False,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.returncode, done.stdout + done.stderr


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100_000, color_system=None), out


async def test_status_exit_codes_json_and_full_width_when_piped() -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    async with running(child):
        url = child.web.base_url()
        not_ready, text = await asyncio.to_thread(_cli, "status", url)
        not_ready_json, raw = await asyncio.to_thread(_cli, "status", "--json", url)
        async with running(parent):
            await wait_active(child, "parent")
            ready, ready_text = await asyncio.to_thread(_cli, "status", url)
            ready_json, ready_raw = await asyncio.to_thread(_cli, "status", "--json", url)
    assert (not_ready, not_ready_json) == (EXIT_NOT_READY, EXIT_NOT_READY) == (3, 3), text
    assert "NOT READY" in text
    assert json.loads(raw)["ready"] is False
    assert (ready, ready_json) == (0, 0), ready_text
    assert json.loads(ready_raw)["links"]["parent"]["state"] == "active"
    # Piped with COLUMNS=80: nothing cut to fit a width.
    assert "…" not in text and "…" not in ready_text
    unreachable, _ = await asyncio.to_thread(_cli, "status", "http://127.0.0.1:9")
    assert unreachable == 2


async def test_long_names_are_not_cut_when_piped() -> None:
    broker = MemoryBroker()
    settings = web_settings("child", upstream=None, downstream=LONG_LINK)
    child = memory_gateway(settings, broker)
    async with running(child):
        for n in range(3):
            await child.generate_event(Noted(note=f"{n}" + "x" * 300))
        url = child.web.base_url()
        code, text = await asyncio.to_thread(_cli, "status", url)
        events_code, events = await asyncio.to_thread(
            _cli, "events", url, "--pattern", "test.noted"
        )
    assert code == EXIT_NOT_READY
    assert LONG_LINK in text
    assert "awaiting_setup_and_peer" in text or "connecting" in text or "awaiting" in text
    assert "…" not in text
    assert events_code == 0 and "…" not in events
    assert "2" + "x" * 300 in events


class _SignalsFirstWrite(io.StringIO):
    """A console file that tells the loop (thread-safe) when something was first written."""

    def __init__(self, loop: asyncio.AbstractEventLoop, written: asyncio.Event) -> None:
        super().__init__()
        self._loop = loop
        self._written = written

    def write(self, s: str) -> int:
        if s and not self._written.is_set():
            self._loop.call_soon_threadsafe(self._written.set)
        return super().write(s)


async def test_events_newest_oldest_and_follow() -> None:
    _, child = memory_pair(MemoryBroker())
    async with running(child):
        for n in range(5):
            await child.generate_event(Counted(n=n))
        url = child.web.base_url()

        def events(*, newest: bool, out: io.StringIO | None = None) -> tuple[int, str]:
            follow = out is not None
            file = out if out is not None else io.StringIO()
            console = Console(file=file, width=100_000, color_system=None)
            code = events_command(
                url,
                pattern="test.*",
                limit=2,
                start_ns=None,
                end_ns=None,
                pending=None,
                as_json=True,
                timeout=TIMEOUT,
                console=console,
                newest=newest,
                follow=follow,
                interval=0.05,
                follow_seconds=TIMEOUT,  # a bound only: it ends after the 3 new events
                stop_after=3 if follow else 0,
            )
            return code, file.getvalue()

        newest = await asyncio.to_thread(events, newest=True)
        oldest = await asyncio.to_thread(events, newest=False)
        first_batch = asyncio.Event()
        out = _SignalsFirstWrite(asyncio.get_running_loop(), first_batch)
        following = asyncio.ensure_future(asyncio.to_thread(events, newest=True, out=out))
        await asyncio.wait_for(first_batch.wait(), TIMEOUT)  # it printed 3 and 4
        for n in range(5, 8):  # three at once: more than one answer (limit 2) holds
            await child.generate_event(Counted(n=n))
        code, lines = await asyncio.wait_for(following, TIMEOUT * 2)
    assert newest[0] == 0 and [e["payload"]["n"] for e in json.loads(newest[1])] == [3, 4]
    assert oldest[0] == 0 and [e["payload"]["n"] for e in json.loads(oldest[1])] == [0, 1]
    followed = [json.loads(line)["payload"]["n"] for line in lines.splitlines()]
    assert code == 0
    assert followed == [3, 4, 5, 6, 7]  # each once, in order, none skipped


async def test_actions_through_the_token_protected_routes() -> None:
    settings = web_settings(
        "child", token=TOKEN, actors={"relay1": {"class": "gwproactor_actors.relay:RelayActor"}}
    )
    child = memory_gateway(settings, MemoryBroker())
    async with running(child):
        url = child.web.base_url()

        def act(action: str, *args: str, token: str | None = TOKEN) -> tuple[int, str]:
            console, out = _console()
            code = action_command(
                url,
                action,
                list(args),
                token=token,
                as_json=False,
                timeout=TIMEOUT,
                console=console,
            )
            return code, out.getvalue()

        reconnect = await asyncio.to_thread(act, "reconnect", "parent")
        no_link = await asyncio.to_thread(act, "reconnect", "nowhere")
        no_token = await asyncio.to_thread(act, "reconnect", "parent", token=None)
        wrong_token = await asyncio.to_thread(act, "reconnect", "parent", token="nope")
        level = await asyncio.to_thread(act, "log-level", "message_summary", "debug")
        summary_level = child.logger.message_summary_logger.level
        bad_category = await asyncio.to_thread(act, "log-level", "everything", "INFO")
        bad_level = await asyncio.to_thread(act, "log-level", "general", "LOUD")
        old_relay = child.get_communicator("relay1")
        restart = await asyncio.to_thread(act, "restart-actor", "relay1")
        new_relay = child.get_communicator("relay1")
        no_actor = await asyncio.to_thread(act, "restart-actor", "ghost")
        env_code, _ = await asyncio.to_thread(
            _cli, "reconnect", url, "parent", env={TOKEN_ENV: TOKEN}
        )
    assert reconnect[0] == 0 and "reconnect requested" in reconnect[1]
    assert no_link[0] == 1 and "no link named 'nowhere'" in no_link[1]
    assert no_token[0] == 1 and TOKEN_ENV in no_token[1]
    assert wrong_token[0] == 1
    assert level[0] == 0 and "message_summary=DEBUG" in level[1]
    assert summary_level == logging.DEBUG
    assert bad_category[0] == 1 and "unknown log category" in bad_category[1]
    assert bad_level[0] == 1 and "level must be one of" in bad_level[1]
    assert restart[0] == 0, restart[1]
    assert new_relay is not None and new_relay is not old_relay
    assert no_actor[0] == 1 and "no configured actor" in no_actor[1]
    assert env_code == 0


async def test_config_json(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('name = "gw1"\n[web]\ntoken = "s3cret-token-value"\n')
    code, raw = await asyncio.to_thread(_cli, "config", "--json", str(config))
    answer = json.loads(raw)
    assert code == 0 and answer["valid"] is True and answer["problems"] == []
    rows = {row["setting"]: row for row in answer["settings"]}
    assert rows["name"]["value"] == "gw1"
    assert rows["web.token"]["value"] == "********"
    assert "s3cret-token-value" not in raw
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 5\n")
    bad_code, bad_raw = await asyncio.to_thread(_cli, "config", "--json", str(bad))
    assert bad_code == 2 and json.loads(bad_raw)["valid"] is False


async def test_status_exits_1_when_the_gateway_answers_with_an_error() -> None:
    """A URL whose prefix the gateway does not serve: it answers /status with 404 (not
    unreachable: exit 1, not 2), with --json too, and says what it answered."""
    child = memory_gateway(web_settings("child"), MemoryBroker())
    async with running(child):
        url = child.web.base_url() + "/no-such-prefix"
        code, text = await asyncio.to_thread(_cli, "status", url)
        json_code, json_text = await asyncio.to_thread(_cli, "status", "--json", url)
    assert (code, json_code) == (EXIT_ERROR_ANSWER, EXIT_ERROR_ANSWER) == (1, 1), text
    assert "the gateway refused" in text and "HTTP 404" in text
    assert "HTTP 404" in json_text
