"""Flash wear: bytes written to storage per event by a gateway that generates events.

Each case runs a child gateway in a process of its own (upstream to a parent gateway in
another process, both on the benchmark's broker). The child generates ~100-byte
``gw.temperature`` events at a steady rate or in one burst, awaiting each commit (each event
is durable, with ``full`` fsynced, before it is published), waits until every event has been
acked by the parent and deleted from its store, stops cleanly (final checkpoint included),
and reports the ``write_bytes`` of its own ``/proc/self/io`` from just after start to just
before exit: the store's appends, the deletes of acked events, checkpoints, the WAL index,
logs, everything the process caused to be written.

    .venv/bin/python scripts/bench.py --only flash            # 2 events/s for 60 s, a burst
    .venv/bin/python scripts/bench.py --only flash --quick    # 20 s

Run as a worker: ``python scripts/_bench_flash.py parent|child JSON``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent

TARGET_BYTES_PER_EVENT = 8 * 1024  # at 2 events/s with durability full (issue 13)
Json = dict[str, Any]


@dataclass(frozen=True)
class FlashCase:
    name: str
    durability: str
    rate: float | None  # events per second; None: one burst
    events: int


def cases(quick: bool) -> list[FlashCase]:
    steady = 40 if quick else 120  # at 2 events/s: 20 s or 60 s
    burst = 1000 if quick else 5000
    return [FlashCase(f"2/s {d}", d, 2.0, steady) for d in ("full", "normal")] + [
        FlashCase(f"burst {d}", d, None, burst) for d in ("full", "normal")
    ]


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


# -- the workers ---------------------------------------------------------------------------


def _settings(cfg: Json, role: str) -> Any:
    from gwproactor import BrokerSettings, LinkSettings, ProactorSettings
    from gwproactor.config import LoggingSettings, PathSettings
    from gwproactor.store import StoreSettings

    broker = BrokerSettings(port=cfg["port"], reconnect_min_seconds=0.05)
    me, peer = (cfg["child"], cfg["parent"]) if role == "child" else (cfg["parent"], cfg["child"])
    link_role = "upstream" if role == "child" else "downstream"
    return ProactorSettings(
        name=me,
        links={"link": LinkSettings(peer=peer, role=link_role, broker=broker)},
        paths=PathSettings(state_dir=Path(cfg["state_dir"]) / me),
        store=StoreSettings(durability=cfg["durability"]),
        logging=LoggingSettings(file_enabled=False),
    )


async def _wait_active(proactor: Any) -> None:
    with proactor.listener("link.state") as states:
        while not proactor.link("link").active:
            await asyncio.wait_for(states.get(), 60)


async def _parent(cfg: Json) -> None:
    from gwproactor_actors.messages import REGISTRY

    from gwproactor import Proactor

    proactor = Proactor(_settings(cfg, "parent"), REGISTRY)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await proactor.start()
    print(json.dumps({"ready": True}), flush=True)
    await stop.wait()
    await proactor.stop_and_join()


async def _child(cfg: Json) -> None:
    from gwproactor_actors.messages import REGISTRY, TemperatureReading

    from gwproactor import Proactor

    proactor = Proactor(_settings(cfg, "child"), REGISTRY)
    await proactor.start()
    await _wait_active(proactor)
    before = write_bytes()
    started = time.monotonic()
    rate = cfg["rate"]
    with proactor.listener("event.acked") as acked:
        if rate:
            for n in range(cfg["events"]):
                due = started + n / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # the rate, paced
                result = await proactor.generate_event(
                    TemperatureReading(sensor="thermo1", celsius=20.0 + n % 50 / 10)
                )
                assert result.is_ok(), result
        else:
            results = await asyncio.gather(
                *(
                    proactor.generate_event(
                        TemperatureReading(sensor="thermo1", celsius=20.0 + n % 50 / 10)
                    )
                    for n in range(cfg["events"])
                )
            )
            assert all(r.is_ok() for r in results)
        generated = time.monotonic() - started
        while proactor.store.pending_count:
            await asyncio.wait_for(acked.get(), 60)
    await proactor.stop_and_join()
    after = write_bytes()
    print(
        json.dumps(
            {
                "events": cfg["events"],
                "write_bytes": after - before,
                "seconds": generated,
                "store_bytes": _store_files(Path(cfg["state_dir"]) / cfg["child"]),
            }
        ),
        flush=True,
    )


def _store_files(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("events.db*"))


# -- the benchmark side ----------------------------------------------------------------------


def run_flash(port: int, work_dir: Path, quick: bool) -> list[Json]:
    """Run every case at once (each measures only its own process) and return the rows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(SCRIPTS)])}
    procs: list[tuple[FlashCase, subprocess.Popen[str], subprocess.Popen[str]]] = []
    try:
        for i, case in enumerate(cases(quick)):
            cfg = {
                "port": port,
                "parent": f"flashparent{i}",
                "child": f"flashchild{i}",
                "state_dir": str(work_dir / "flash"),
                "durability": case.durability,
                "rate": case.rate,
                "events": case.events,
            }
            parent = _spawn("parent", cfg, env)
            child = _spawn("child", cfg, env)
            procs.append((case, parent, child))
        rows: list[Json] = []
        for case, _parent_proc, child in procs:
            out, err = child.communicate(timeout=case.events / (case.rate or 500) + 120)
            if child.returncode != 0:
                raise RuntimeError(f"flash child {case.name} failed: {err[-2000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            result["case"] = case.name
            result["bytes_per_event"] = result["write_bytes"] / result["events"]
            rows.append(result)
        return rows
    finally:
        for _, parent, child in procs:
            for proc in (child, parent):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (child, parent):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _spawn(role: str, cfg: Json, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), role, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def render(rows: list[Json]) -> str:
    lines = [
        "flash wear (write_bytes of the child gateway's process per event, ack/delete and "
        "checkpoints included; ~100-byte events, each awaited)",
        f"  {'case':<14} {'events':>7} {'seconds':>8} {'bytes written':>14} {'per event':>11}",
    ]
    lines.extend(
        f"  {row['case']:<14} {row['events']:>7} {row['seconds']:>8.1f} "
        f"{row['write_bytes']:>14,} {row['bytes_per_event']:>9,.0f} B"
        for row in rows
    )
    steady = next((r for r in rows if r["case"] == "2/s full"), None)
    if steady is not None:
        ok = steady["bytes_per_event"] <= TARGET_BYTES_PER_EVENT
        lines.append(
            f"  target at 2/s full: <= {TARGET_BYTES_PER_EVENT:,} B per event: "
            f"{'PASS' if ok else 'FAIL'} ({steady['bytes_per_event']:,.0f} B)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    role, config = sys.argv[1], json.loads(sys.argv[2])
    asyncio.run(_parent(config) if role == "parent" else _child(config))
