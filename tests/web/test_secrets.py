"""Secrets from the settings appear in no route's answer, no log line and no command output."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from gwproactor import BrokerSettings, TlsSettings
from gwproactor.cli._events import events_command
from gwproactor.cli._status import status_command
from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, Counted, running, wait_active, wait_until
from tests.web._support import memory_gateway, web_settings

WEB_TOKEN = "tok-SECRET-web-7781"
BROKER_PASSWORD = "pw-SECRET-broker-9912"
KEY_PASSWORD = "kp-SECRET-key-5531"
SECRETS = (WEB_TOKEN, BROKER_PASSWORD, KEY_PASSWORD)


def _broker(tmp_path: Path) -> BrokerSettings:
    return BrokerSettings(
        username="gateway-user",
        password=BROKER_PASSWORD,
        tls=TlsSettings(
            enabled=False,  # the memory transport ignores TLS; the settings still hold it
            certfile=tmp_path / "client.crt",
            keyfile=tmp_path / "client.key",
            keyfile_password=KEY_PASSWORD,
        ),
    )


def _cli(command: str, url: str, *, as_json: bool) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    if command == "status":
        code = status_command(url, as_json=as_json, timeout=TIMEOUT, console=console)
    else:
        code = events_command(
            url,
            pattern=None,
            limit=None,
            start_ns=None,
            end_ns=None,
            pending=None,
            as_json=as_json,
            timeout=TIMEOUT,
            console=console,
        )
    return code, out.getvalue()


async def test_secrets_appear_nowhere(
    http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = MemoryBroker()
    broker_settings = _broker(tmp_path)
    parent = memory_gateway(
        web_settings(
            "parent", upstream=None, downstream="child", token=WEB_TOKEN, broker=broker_settings
        ),
        broker,
    )
    child = memory_gateway(web_settings("child", token=WEB_TOKEN, broker=broker_settings), broker)
    outputs: dict[str, str] = {}
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            await child.generate_event(Counted(n=1))
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        child.report_problem("a test problem", "details of it")
        for proactor in (parent, child):
            base = proactor.web.base_url()
            for path in (
                "/",
                "/?part=main",
                "/status",
                "/metrics",
                "/livez",
                "/readyz",
                "/events",
                "/events?limit=0",
                "/nowhere",
            ):
                async with http.get(base + path) as response:
                    outputs[f"{proactor.name} GET {path}"] = (
                        f"{response.headers!r}\n{await response.text()}"
                    )
            link = next(iter(proactor.links))
            for label, token in (("none", None), ("wrong", "wrong"), ("right", WEB_TOKEN)):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.post(
                    f"{base}/actions/reconnect/{link}", headers=headers
                ) as response:
                    outputs[f"{proactor.name} POST token {label}"] = (
                        f"{response.status} {response.headers!r}\n{await response.text()}"
                    )
            for command in ("status", "events"):
                for as_json in (False, True):
                    code, text = await asyncio.to_thread(_cli, command, base, as_json=as_json)
                    assert code == 0, text
                    outputs[f"{proactor.name} cli {command} {as_json}"] = text
        outputs["status repr"] = repr(child.status())
    outputs["logs"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert len(outputs) == 2 * (9 + 3 + 4) + 2
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked in {where}"
    # The pages did render (a blank answer would pass the check above trivially).
    assert "child" in outputs["child GET /"]
    assert "gwproactor_link_state" in outputs["child GET /metrics"]
    assert "test.counted" in outputs["parent cli events False"]
