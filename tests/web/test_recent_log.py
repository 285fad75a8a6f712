"""The recent-log view: the last WARNING+ records of the gateway's loggers, bounded, in
``/status`` (``recent_log``) and on the page (escaped)."""

from __future__ import annotations

import logging

import aiohttp

from gwproactor.mqtt import MemoryBroker
from gwproactor.observe.recent_log import MAX_MESSAGE, RecentLog
from tests.helpers import running
from tests.web._support import get_json, get_text, memory_gateway, web_settings


def test_the_ring_keeps_the_last_warnings_and_worse_only() -> None:
    ring = RecentLog(capacity=50)
    logger = logging.getLogger("gwproactor.tests.recent_log_unit")
    logger.addHandler(ring)
    try:
        for n in range(500):
            logger.warning("warning %d", n)
            logger.info("info %d", n)
        logger.error("x" * 10_000)
        try:
            raise ValueError("bad value")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(ring)
    entries = ring.snapshot()
    assert len(entries) == 50
    assert [e["message"] for e in entries[:48]] == [f"warning {n}" for n in range(452, 500)]
    assert all(e["level"] in ("WARNING", "ERROR") for e in entries)
    assert len(entries[-2]["message"]) == MAX_MESSAGE
    assert entries[-1]["message"] == "failed: ValueError: bad value"
    assert entries[-1]["logger"] == "gwproactor.tests.recent_log_unit"
    assert ring.seen == 502


async def test_status_and_page_show_the_recent_log_while_running(
    http: aiohttp.ClientSession,
) -> None:
    gateway = memory_gateway(
        web_settings("child", upstream=None, web={"recent_log_size": 5}), MemoryBroker()
    )
    part = logging.getLogger("gwproactor.actor.tests-recent-log")
    async with running(gateway):
        for n in range(20):
            part.warning("disk <b>slow</b> %d", n)
        part.info("not shown")
        status, body = await get_json(http, gateway, "/status")
        assert status == 200
        messages = [e["message"] for e in body["recent_log"]]
        assert messages == [f"disk <b>slow</b> {n}" for n in range(15, 20)]
        status, _, page = await get_text(http, gateway, "/")
        assert status == 200
        assert 'id="recent-log"' in page
        assert "disk &lt;b&gt;slow&lt;/b&gt; 19" in page
        assert "disk <b>" not in page
        assert "not shown" not in page
    # Detached once stopped: nothing more is kept.
    part.warning("after stop")
    assert gateway.recent_log.snapshot()[-1]["message"] == "disk <b>slow</b> 19"
    assert gateway.recent_log not in logging.getLogger("gwproactor").handlers
