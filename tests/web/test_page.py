"""The HTML status page: content, escaping, no external resources, and headless Chromium."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import aiohttp
import pytest

from gwproactor import Proactor
from gwproactor.mqtt import MemoryBroker
from tests.helpers import running, wait_active
from tests.web._support import get_text, memory_gateway, web_settings

_CHROMIUM_SECONDS = 60.0


def _three_gateways(broker: MemoryBroker, refresh: float = 2.0) -> tuple[Proactor, ...]:
    """parent <- middle -> leaf; only ``middle`` serves the page; its ``leaf`` link is
    not active unless the leaf runs."""
    parent = memory_gateway(
        web_settings("parent", upstream=None, downstream="middle", web={"enabled": False}),
        broker,
    )
    middle = memory_gateway(
        web_settings(
            "middle",
            upstream="parent",
            downstream="leaf",
            web={"status_refresh_seconds": refresh},
        ),
        broker,
    )
    return parent, middle


async def test_page_shows_links_and_is_self_contained(http: aiohttp.ClientSession) -> None:
    parent, middle = _three_gateways(MemoryBroker())
    async with running(parent, middle):
        await wait_active(middle, "parent")
        middle.report_problem("<script>alert(1)</script> relay", "a & b")
        status, content_type, html = await get_text(http, middle, "/")
        async with http.get(middle.web.base_url() + "/") as response:
            csp = response.headers["Content-Security-Policy"]
        _, _, fragment = await get_text(http, middle, "/?part=main")
    assert status == 200
    assert content_type.startswith("text/html")
    assert "<title>middle · gateway status</title>" in html
    assert 'data-link="parent" data-state="active"' in html
    assert 'data-link="leaf" data-state="' in html
    assert 'data-refresh-ms="2000"' in html
    # Escaped, never interpreted.
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; relay" in html
    assert "a &amp; b" in html
    # No external resources: no src at all, links only to the gateway's own routes, and a
    # policy that forbids loading anything else anyway.
    assert not re.search(r"\bsrc\s*=", html)
    assert set(re.findall(r'\bhref="([^"]*)"', html)) == {
        "/status",
        "/metrics",
        "/events?newest=true&amp;limit=50",
        "/readyz",
    }
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    # The fragment the script fetches is the same content without the document around it.
    assert not fragment.startswith("<!doctype")
    assert 'data-link="parent" data-state="active"' in fragment
    assert "<html" not in fragment


async def _chromium(chromium: Path, url: str, profile: Path, *extra: str) -> str:
    """Run headless chromium off the loop; returns its stdout (the DOM for --dump-dom)."""
    process = await asyncio.create_subprocess_exec(
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), _CHROMIUM_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_page_in_headless_chromium(
    chromium: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gwproactor.web.access")
    parent, middle = _three_gateways(MemoryBroker(), refresh=0.5)
    async with running(parent, middle):
        await wait_active(middle, "parent")
        leaf_state = middle.link_state("leaf")
        url = middle.web.base_url() + "/"
        screenshot = tmp_path / "status.png"
        # Two browsers at once: a DOM dump and a screenshot (for a person to look at).
        dom, _ = await asyncio.gather(
            _chromium(chromium, url, tmp_path / "profile", "--dump-dom"),
            _chromium(
                chromium,
                url,
                tmp_path / "profile2",
                f"--screenshot={screenshot}",
                "--window-size=1200,900",
                "--hide-scrollbars",
            ),
        )
    assert leaf_state != "active"
    assert '<h1 id="gateway">middle</h1>' in dom
    assert re.search(r'data-link="parent" data-state="active">.*?>active</span>', dom)
    assert re.search(rf'data-link="leaf" data-state="{leaf_state}">.*?>{leaf_state}</span>', dom)
    assert "NOT READY" in dom  # the leaf link is down
    # The banner stays hidden: every refresh the script made reached the gateway.
    assert '<div id="banner" class="banner" role="alert" hidden=""></div>' in dom
    # The inline script ran under the page's CSP and polled the fragment.
    page_requests = [r for r in caplog.records if " GET / -> 200" in r.getMessage()]
    assert len(page_requests) >= 3, caplog.text
    assert screenshot.stat().st_size > 1000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
