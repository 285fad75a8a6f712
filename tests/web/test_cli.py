"""``gwproactor status`` and ``gwproactor events`` against a running gateway."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from datetime import datetime

import pytest
from rich.console import Console

from gwproactor.cli import main
from gwproactor.cli._events import events_command, parse_time_ns
from gwproactor.cli._status import status_command
from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, Counted, running, wait_active
from tests.web._support import memory_pair


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=220, color_system=None), out


def _status(url: str, *, as_json: bool = False) -> tuple[int, str]:
    console, out = _console()
    return status_command(url, as_json=as_json, timeout=TIMEOUT, console=console), out.getvalue()


def _events(
    url: str,
    *,
    pattern: str | None = None,
    limit: int | None = None,
    pending: bool | None = None,
    as_json: bool = False,
) -> tuple[int, str]:
    console, out = _console()
    code = events_command(
        url,
        pattern=pattern,
        limit=limit,
        start_ns=None,
        end_ns=None,
        pending=pending,
        as_json=as_json,
        timeout=TIMEOUT,
        console=console,
    )
    return code, out.getvalue()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_status_renders_links_and_json() -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    async with running(parent, child):
        await wait_active(child, "parent")
        url = child.web.base_url()
        code, text = await asyncio.to_thread(_status, url)
        json_code, raw = await asyncio.to_thread(_status, url.removeprefix("http://"), as_json=True)
    assert code == 0, text
    assert "child" in text
    assert "READY" in text
    assert "NOT READY" not in text
    row = next(line for line in text.splitlines() if "upstream" in line)
    assert "parent" in row
    assert "active" in row
    assert "receive queue" in text
    assert "store backlog" in text
    assert "watchdog" in text
    assert json_code == 0
    snapshot = json.loads(raw)
    assert snapshot["links"]["parent"]["state"] == "active"


async def test_events_table_filters_and_errors() -> None:
    _, child = memory_pair(MemoryBroker())
    async with running(child):
        for n in range(4):
            await child.generate_event(Counted(n=n))
        url = child.web.base_url()
        code, table = await asyncio.to_thread(_events, url, pattern="test.*", limit=3)
        json_code, raw = await asyncio.to_thread(_events, url, pending=True, as_json=True)
        none_code, none = await asyncio.to_thread(_events, url, pending=False)
        bad_code, bad = await asyncio.to_thread(_events, url, pattern="test.*.x")
    assert code == 0, table
    assert "3 events" in table
    assert table.count("test.counted") == 3
    # The newest 3 by default (oldest first among them).
    assert '{"n":0}' not in table
    assert '{"n":1}' in table
    assert '{"n":3}' in table
    assert json_code == 0
    assert [e["payload"]["n"] for e in json.loads(raw)] == [0, 1, 2, 3]
    assert (none_code, none.strip()) == (0, "no events match")
    assert bad_code == 1
    assert "'*' is only allowed as the last level" in bad


def test_unreachable_gateway_is_exit_2() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, text = _status(url)
    assert code == 2
    assert "cannot reach the gateway" in text
    code, text = _events(url)
    assert code == 2
    assert "cannot reach the gateway" in text
    code, text = _status("ftp://127.0.0.1:21")
    assert code == 2
    assert "only http:// and https://" in text


def test_main_dispatches_status_and_events(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"127.0.0.1:{_closed_port()}"
    assert main(["status", url, "--timeout", "2"]) == 2
    assert main(["events", url, "--pattern", "gw.*", "--pending", "--limit", "5"]) == 2
    assert "cannot reach the gateway" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["events", url, "--start", "last tuesday"])
    assert exit_info.value.code == 2
    assert "neither ns since the epoch nor an ISO date/time" in capsys.readouterr().err


def test_time_arguments() -> None:
    assert parse_time_ns("1700000000000000000") == 1_700_000_000_000_000_000
    moment = datetime.fromisoformat("2024-05-01T12:00:00+00:00")
    assert parse_time_ns("2024-05-01T12:00:00+00:00") == int(moment.timestamp()) * 10**9
    with pytest.raises(ValueError, match="neither"):
        parse_time_ns("soon")
