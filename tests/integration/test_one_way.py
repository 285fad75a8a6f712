"""A one-way link on a real mosquitto (issue 17, item 2): honest health.

A broker ACL (mosquitto ``acl_file``, reloaded with SIGHUP) drops every publish of the
child to the parent while the parent's still reach the child. The child hears its peer
but none of its acks come back. It must leave ``active`` at the first ack timeout and stay
out (the parent's pings must not bring it back), raise a problem naming the link and the
unacked count after ``ack_timeout * unanswered_problem_timeouts``, and say so on
``/readyz`` (503), ``/status`` and the sd_notify STATUS line. When the ACL allows the
child again, the link comes back on the first ack and every event arrives exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import aiohttp
import pytest

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    is_state,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)
from tests.web._support import get_json, get_text

pytestmark = pytest.mark.broker

USERS = {"parent": "parent-secret", "child": "child-secret"}
ACL_OPEN = "user parent\ntopic readwrite #\n\nuser child\ntopic readwrite #\n"
# The child may still read everything and publish its presence, nothing else.
ACL_ONE_WAY = (
    "user parent\ntopic readwrite #\n\nuser child\ntopic read #\ntopic write gw/child/status\n"
)
ACK_TIMEOUT = 0.5
TIMEOUTS_BEFORE_PROBLEM = 3


def _set_acl(broker: Mosquitto, acl: str) -> None:
    """Rewrite the broker's ACL file and make it reload it (SIGHUP)."""
    (broker.work_dir / "acl").write_text(acl)
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGHUP)


def _link(user: str, broker: Mosquitto) -> dict[str, Any]:
    return {
        "broker": BrokerSettings(
            port=broker.port,
            username=user,
            password=USERS[user],
            reconnect_min_seconds=0.05,
            reconnect_max_seconds=0.3,
        ),
        "ack_timeout_seconds": ACK_TIMEOUT,
        "unanswered_problem_timeouts": TIMEOUTS_BEFORE_PROBLEM,
        "poll_seconds": 0.3,
    }


async def test_a_link_whose_publishes_are_dropped_is_not_active_and_says_so(
    mosquitto_factory: Any,
) -> None:
    broker: Mosquitto = mosquitto_factory(users=USERS, acl=ACL_OPEN, allow_anonymous=False)
    parent_link, child_link = _link("parent", broker), _link("child", broker)
    parent_settings, _ = pair_settings(parent_link.pop("broker"), **parent_link)
    _, child_settings = pair_settings(child_link.pop("broker"), **child_link)
    child_settings = child_settings.model_copy(
        update={"web": child_settings.web.model_copy(update={"enabled": True, "port": 0})}
    )
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    link = child.link("parent")
    async with running(parent, child), aiohttp.ClientSession() as http:
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        assert (await get_json(http, child, "/readyz"))[0] == 200
        with (
            child.listener("link.state") as states,
            child.listener("problem") as problems,
        ):
            _set_acl(broker, ACL_ONE_WAY)
            for n in range(20):
                child.generate_event(Counted(n=n))
            await states.wait_for(is_state("awaiting_peer", "parent"), TIMEOUT)
            out_at = time.monotonic()
            heard_before = link.stats.messages_in["gw.ping"]
            status, body = await get_json(http, child, "/readyz")
            assert (status, body["links_not_active"]) == (503, {"parent": "awaiting_peer"})
            problem = await problems.wait_for(
                lambda e: e.source == "parent: acks_unanswered", TIMEOUT
            )
            # Reported after ack_timeout x N of unanswered acks (the first went out about one
            # ack timeout before the link left active), and not much later.
            waited = time.monotonic() - out_at
            assert (TIMEOUTS_BEFORE_PROBLEM - 1) * ACK_TIMEOUT * 0.9 <= waited < TIMEOUT
            unacked = link.acks_unanswered
            assert unacked >= 1
            assert "unacknowledged" in problem.data["details"]
            assert problem.data["details"].startswith(f"{unacked} message(s) to parent")
            # The parent was heard all along: a one-way path, not a dead one.
            assert link.stats.messages_in["gw.ping"] > heard_before
            assert link.state.value == "awaiting_peer"
            status, body = await get_json(http, child, "/readyz")
            assert status == 503
            status, body = await get_json(http, child, "/status")
            assert body["links"]["parent"]["acks_overdue"] is True
            assert body["links"]["parent"]["acks_unanswered"] >= 1
            assert f"parent awaiting_peer ({link.acks_unanswered} unacked)" in child.status_line()
            status, _, page = await get_text(http, child, "/")
            assert status == 200 and "NOT READY" in page
            assert re.search(r'class="pill bad" title="acks overdue">\d+ unacked<', page)
            for n in range(20, 40):
                child.generate_event(Counted(n=n))
            _set_acl(broker, ACL_OPEN)
            await states.wait_for(is_state("active", "parent"), TIMEOUT)
            back_after = time.monotonic() - out_at
            assert (await get_json(http, child, "/readyz"))[0] == 200
            with parent.listener("event.received") as got:
                await wait_until(lambda: len(recorder.events) >= 40, got, TIMEOUT)
            with child.listener("event.acked") as acked:
                await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
        # Exactly: out at the first ack timeout, back on the first ack. No flapping on the
        # parent's pings in between.
        assert [(e.data["old"], e.data["new"]) for e in states.history] == [
            ("active", "awaiting_peer"),
            ("awaiting_peer", "active"),
        ]
        assert "unacked" not in child.status_line()
    assert sorted(e.n for e in recorder.events) == list(range(40))
    assert link.stats.unanswered_reports == 1
    print(f"one-way: not active for {back_after:.2f} s; 40 committed, 40 delivered")
