"""History on the status page: link states and since when, transitions of the last hour as a
timeline, flap counts, the backlog as a sparkline, recent problems with counts, links to
the JSON routes; bounded ring buffers; readable at phone width (headless chromium at 1280
and 390 pixels, screenshots kept for a person to look at: set GW_SCREENSHOT_DIR)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from gwproactor.mqtt import MemoryBroker
from gwproactor.observe.history import WINDOW_SECONDS, GatewayHistory, Transition
from gwproactor.web._page import render_page
from tests.helpers import TIMEOUT, Counted, Raiser, Recorder, is_state, running, wait_active
from tests.support.cdp import Browser
from tests.web._support import memory_pair

WIDTHS = (1280, 390)


def test_history_is_bounded_and_counts_flaps() -> None:
    now = [10_000.0]
    pending = [0]
    history = GatewayHistory(
        sample_seconds=10.0, max_transitions=20, backlog=lambda: pending[0], clock=lambda: now[0]
    )
    history.link("up")
    for n in range(100):  # 100 transitions a minute apart: 50 times out of active
        now[0] += 60
        old, new = ("connecting", "active") if n % 2 else ("active", "connecting")
        history.link_state("up", old, new)
    link = history.links["up"]
    assert len(link.transitions) == 20  # the ring keeps the newest
    assert link.flaps_total == 50
    assert link.flaps(now[0]) == 10  # of the kept ones
    assert (link.state, link.since) == ("active", now[0])
    for n in range(1000):  # samples every 10 s: the ring holds one hour of them
        now[0] += 10
        pending[0] = n
        history.sample()
    assert len(history.backlog) == int(WINDOW_SECONDS / 10) + 1
    assert history.backlog[-1] == (now[0], 999)
    snapshot = history.snapshot()
    assert snapshot["links"]["up"]["flaps_total"] == 50
    assert snapshot["links"]["up"]["transitions"] == []  # all older than an hour
    assert len(snapshot["backlog"]) == len(history.backlog)


async def test_page_history_in_chromium_at_desktop_and_phone_width(
    chromium: Path, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    child.add_communicator(Recorder("recorder", child))
    child.add_communicator(Raiser("relay", child))
    async with running(parent, child):
        await wait_active(child, "parent")
        for outage in range(2):  # two real outages: two flaps, a backlog that grows
            with child.listener("link.state") as states:
                broker.stop()
                await states.wait_for(is_state("connecting", "parent"), TIMEOUT)
            for n in range(5 * (outage + 1)):
                await child.generate_event(Counted(n=n))
            child.history.sample()
            broker.start()
            await wait_active(child, "parent")
            child.history.sample()
        for n in range(4):
            child.report_problem("relay: read timeout", f"attempt {n}", key="relay:timeout")
        # The last hour of backlog, compressed: samples dated back over the window (what the
        # timer would have taken), so the sparkline has a shape to look at.
        now = child.status()["time"]
        older = [(now - WINDOW_SECONDS + 60 * i, (i * 7) % 40 if i < 40 else 0) for i in range(59)]
        child.history.backlog.extendleft(reversed(older))
        status = child.status()
        # Likewise an hour of link history before the real outages above, for the picture.
        link = child.history.links["parent"]
        link.created = now - WINDOW_SECONDS
        link.flaps_total += 2  # the two seeded below
        past = [("not_started", "connecting", 3500), ("connecting", "active", 3490)]
        past += [("active", "awaiting_peer", 2400), ("awaiting_peer", "active", 2100)]
        past += [("active", "connecting", 900), ("connecting", "active", 600)]
        link.transitions.extendleft(
            reversed([Transition(now - ago, old, new) for old, new, ago in past])
        )
        url = child.web.base_url() + "/"
        shots = {width: tmp_path / f"status-{width}.png" for width in WIDTHS}
        checks = await asyncio.to_thread(_look, chromium, tmp_path, url, shots)
    parent_history = status["history"]["links"]["parent"]
    assert parent_history["state"] == "active"
    assert parent_history["flaps_last_hour"] == 2
    assert [t["new"] for t in parent_history["transitions"]].count("active") == 3
    html = render_page(status, 2.0)
    assert 'data-history="parent"' in html and "2 in the last hour" in html
    assert "&times;4" in html  # the problem reported 4 times, shown once with its count
    for width in WIDTHS:
        check = checks[width]
        assert check["overflow"] <= 0, (width, check)  # nothing scrolls sideways
        assert check["timelines"] == 1
        assert check["sparkline_points"] >= 60
        assert check["nav"] == ["/status", "/metrics", "/events?newest=true&limit=50", "/readyz"]
        assert shots[width].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checks[390]["thead"] == "none" and checks[1280]["thead"] != "none"
    keep = os.environ.get("GW_SCREENSHOT_DIR")
    if keep:
        for shot in shots.values():
            shutil.copy(shot, Path(keep) / shot.name)


_CHECKS = """({
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  timelines: document.querySelectorAll("svg.timeline").length,
  sparkline_points: document.querySelector("#backlog polyline")
      .getAttribute("points").trim().split(" ").length,
  nav: Array.from(document.querySelectorAll("#nav a")).map(a => a.getAttribute("href")),
  thead: getComputedStyle(document.querySelector("#links thead")).display,
})"""


def _look(chromium: Path, tmp_path: Path, url: str, shots: dict[int, Path]) -> dict[int, dict]:  # type: ignore[type-arg]
    out = {}
    for width, shot in shots.items():
        with Browser(chromium, tmp_path / f"profile-{width}") as browser:
            browser.open(url, width)
            out[width] = browser.evaluate(_CHECKS)
            browser.screenshot(shot)
    return out
