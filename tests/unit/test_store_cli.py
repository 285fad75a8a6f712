"""``gwproactor store CONFIG ...``: offline stats, export, dead letters, retry, drop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gwproactor.cli import main
from gwproactor.store import EventStore, StoreSettings
from tests.store._support import PAYLOAD, TYPE, ok, wait


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    """A config whose store holds 3 pending events (one of them dead-lettered) and 2
    archived ones (one owed to an actor)."""
    state = tmp_path / "state"
    store = EventStore(state / "events.db", StoreSettings(max_delivery_attempts=1))
    await wait(store.start())
    for i in range(3):
        ok(await wait(store.append(TYPE, f"p{i}", i, "gw", PAYLOAD)))
    ok(await wait(store.record_received(TYPE, "a0", 10, "child", b'{"n":1}')))
    ok(await wait(store.record_received(TYPE, "a1", 11, "child", b"\xff", deliver_to="x")))
    dead = ok(await wait(store.failed_attempts(["p1"])))
    assert [d.event_id for d in dead] == ["p1"]
    await wait(store.stop())
    path = tmp_path / "gw.toml"
    path.write_text(f'name = "gw"\npaths.state_dir = "{state}"\n')
    return path


def _json_out(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


async def test_stats_export_and_dead_letters(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", str(config), "stats", "--json"]) == 0
    stats = _json_out(capsys)
    assert isinstance(stats, dict)
    assert stats["pending"]["count"] == 2
    assert stats["archived"]["count"] == 2
    assert (stats["dead_letters"], stats["owed_to_actors"]) == (1, 1)
    assert main(["store", str(config), "export"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event_id"], r["state"]) for r in rows] == [
        ("p0", "pending"),
        ("p2", "pending"),
        ("a0", "archived"),
        ("a1", "archived"),
        ("p1", "dead_letter"),
    ]
    assert rows[2]["payload"] == {"n": 1}
    assert rows[3]["payload"] == {"base64": "/w=="}  # not JSON: kept as bytes
    assert main(["store", str(config), "export", "--which", "pending"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["store", str(config), "dead-letters", "--json"]) == 0
    letters = _json_out(capsys)
    assert isinstance(letters, list)
    assert [(x["event_id"], x["attempts"]) for x in letters] == [("p1", 1)]
    assert main(["store", str(config), "dead-letters"]) == 0
    assert "p1" in capsys.readouterr().out


async def test_retry_and_drop(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", str(config), "drop", "nope"]) == 1
    assert main(["store", str(config), "retry", "p1"]) == 0
    assert main(["store", str(config), "retry", "p1"]) == 1  # not a dead letter any more
    capsys.readouterr()
    assert main(["store", str(config), "export", "--which", "pending"]) == 0
    pending = [json.loads(line)["event_id"] for line in capsys.readouterr().out.splitlines()]
    assert pending == ["p0", "p2", "p1"]  # back at the end of the queue
    assert main(["store", str(config), "stats", "--json"]) == 0
    assert _json_out(capsys)["dead_letters"] == 0  # type: ignore[index]


async def test_missing_store_and_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(f'name = "gw"\npaths.state_dir = "{tmp_path / "none"}"\n')
    assert main(["store", str(config), "stats"]) == 1
    assert "no event store" in capsys.readouterr().out
    config.write_text("name = 3\n")
    assert main(["store", str(config), "stats"]) == 2
