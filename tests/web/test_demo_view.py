"""The demo's live view on a small terminal: the newest notes are the ones on screen."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from gwproactor import BrokerSettings, Proactor
from gwproactor.cli import _parser
from gwproactor.cli._demo import Demo
from gwproactor.observe.listeners import CommEvent
from tests.helpers import REGISTRY, pair_settings


def test_the_newest_notes_fit_on_an_80x24_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=True, color_system=None)
    demo = Demo(Path("."), console, duration=0, outage_at=-1, outage_seconds=0, live=True)
    for n in range(60):
        demo.note(f"note {n:02d}: child: awaiting_peer -> active (peer_message) " + "x" * 60)
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    console.print(demo.render(parent, child))
    lines = out.getvalue().splitlines()
    assert len(lines) <= 24, lines
    assert any("note 59" in line for line in lines), lines  # the newest is on screen
    assert not any("note 00" in line for line in lines)
    assert all(len(line) <= 80 for line in lines)


def test_the_demo_runs_until_ctrl_c_by_default() -> None:
    args = _parser().parse_args(["demo"])
    assert args.duration == 0


def test_link_lines_name_the_gateway_and_its_link() -> None:
    # Links are named after their peer: the child's link to the parent is "parent".
    demo = Demo(
        Path("."),
        Console(file=io.StringIO()),
        duration=0,
        outage_at=-1,
        outage_seconds=0,
        live=True,
    )
    event = CommEvent(
        "link.state", "parent", {"old": "active", "new": "connecting", "cause": "mqtt_disconnected"}
    )
    demo.on_comm_event(event, "child")
    assert demo.log[-1].endswith(
        "child \N{RIGHTWARDS ARROW} parent: active -> connecting (mqtt_disconnected)"
    )
