"""Benchmark the event store's group commit: committed events per second.

Each round appends a burst of events from the loop without awaiting in between, then
awaits the last future; every future is checked afterwards. Rounds run against one store
per durability in a temporary directory, so the database grows as it would in service.

    .venv/bin/python scripts/bench_store.py [--events 20000] [--rounds 5] [--payload 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Literal

from result import Ok

from gwproactor.store import EventStore, StoreSettings

TARGET_PER_SECOND = 20_000


async def bench(
    directory: Path, durability: Literal["full", "normal"], events: int, rounds: int, size: int
) -> list[float]:
    store = EventStore(directory / f"bench-{durability}.db", StoreSettings(durability=durability))
    await store.start()
    payload = b"{" + b'"v":1,' * ((size - 2) // 6) + b"}"
    rates: list[float] = []
    try:
        for r in range(rounds):
            batches_before = store.stats.committed_batches
            start = time.perf_counter()
            futures = [
                store.append("bench.relay.state", f"{r}-{i}", time.time_ns(), "bench", payload)
                for i in range(events)
            ]
            # FIFO: when the last future is answered, every earlier one has been too.
            await futures[-1]
            elapsed = time.perf_counter() - start
            failed = sum(1 for f in futures if not isinstance(f.result(), Ok))
            if failed:
                raise SystemExit(f"{failed} appends failed in round {r}")
            batches = store.stats.committed_batches - batches_before
            rates.append(events / elapsed)
            print(
                f"  {durability:6} round {r + 1}: {events / elapsed:9,.0f} events/s "
                f"({elapsed * 1000:6.1f} ms, {batches} commits, {events / batches:6.0f} per commit)"
            )
    finally:
        await store.stop()
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="appends per burst")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--payload", type=int, default=200, help="payload bytes per event")
    args = parser.parse_args()
    print(f"{args.rounds} bursts of {args.events} appends, {args.payload}-byte payloads")
    summary: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="gwproactor-bench-") as tmp:
        for durability in ("full", "normal"):
            summary[durability] = await bench(
                Path(tmp), durability, args.events, args.rounds, args.payload
            )
    print()
    print(f"{'durability':10} {'min':>10} {'median':>10} {'max':>10}   events committed/s")
    for durability, rates in summary.items():
        print(
            f"{durability:10} {min(rates):10,.0f} {statistics.median(rates):10,.0f} "
            f"{max(rates):10,.0f}"
        )
    full_median = statistics.median(summary["full"])
    verdict = "meets" if full_median >= TARGET_PER_SECOND else "MISSES"
    print(
        f"\ndefault durability (full) median {full_median:,.0f}/s {verdict} the target of "
        f"{TARGET_PER_SECOND:,}/s; normal/full = "
        f"{statistics.median(summary['normal']) / full_median:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
