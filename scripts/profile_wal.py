"""WAL frames (pages written) per commit of one event, by b-tree: where a commit's bytes go.

    .venv/bin/python scripts/profile_wal.py                      # gwproactor's own ids
    .venv/bin/python scripts/profile_wal.py --ids hex            # unpadded hex counter
    .venv/bin/python scripts/profile_wal.py --ids pad12 --kind pending

Every sqlite commit in WAL mode appends one frame (a 24-byte header and a page) per page
it changed, so frames per commit are what a commit writes to flash. This drives an
:class:`~gwproactor.store.EventStore` directly: ``--runs`` simulated runs of a gateway (each
with its own id prefix, as each process start draws one) of ``--events`` events each, one
commit per event, awaited one at a time as ``generate_event`` does; the last run is
measured. The frames of the measured run are read from the ``-wal`` file (checkpoints are
off meanwhile) and each page number is attributed to its b-tree and page type through
sqlite's ``dbstat``. Counts, not times: the machine's load does not change them.

``--ids``: ``gw`` (``new_message_id`` of the code under test; one prefix per simulated run),
``hex`` (``{prefix}-{counter:x}``, the ids before fixed width), ``padN``
(``{prefix}-{counter:0Nx}``). ``--kind``: ``archive`` (a gateway without an upstream link,
as the events benchmark's awaited worker) or ``pending`` (appended, never acked).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from result import Ok  # noqa: E402

from gwproactor.store import EventStore, StoreSettings  # noqa: E402
from gwproactor.wire import message  # noqa: E402

_WAL_HEADER = 32
_FRAME_HEADER = 24
_PAYLOAD = b'{"src":"bench-child","time_ns":1700000000000000000,"channel":"c-7","value":12.5}'


def _id_maker(ids: str) -> Callable[[], str]:
    """A new run's id function (its own prefix, its counter from 1)."""
    if ids == "gw":
        # As a fresh process would: a new prefix and counter for each simulated run.
        message._ID_PREFIX = os.urandom(6).hex()  # noqa: SLF001
        message._ID_COUNTER = itertools.count(1)  # noqa: SLF001
        return message.new_message_id
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    if ids == "hex":
        return lambda: f"{prefix}-{next(counter):x}"
    width = int(ids.removeprefix("pad"))
    return lambda: f"{prefix}-{next(counter):0{width}x}"


async def _one_at_a_time(store: EventStore, kind: str, new_id: Callable[[], str], n: int) -> None:
    loop = asyncio.get_running_loop()
    for i in range(n):
        event_id = new_id()
        result: object
        if kind == "pending":
            result = await store.append("bench.event", event_id, i, "bench-child", _PAYLOAD)
        else:
            future: asyncio.Future[object] = loop.create_future()
            store.archive_then(
                "bench.event", event_id, i, "bench-child", _PAYLOAD, future.set_result
            )
            result = await future
        assert isinstance(result, Ok), result


def _frames(wal: Path, page_size: int) -> list[tuple[int, bool]]:
    """(page number, is a commit frame) of every frame in the WAL, in order."""
    data = wal.read_bytes()
    frame = _FRAME_HEADER + page_size
    out = []
    for offset in range(_WAL_HEADER, len(data) - frame + 1, frame):
        pgno, commit_size = struct.unpack(">II", data[offset : offset + 8])
        out.append((pgno, commit_size != 0))
    return out


def _owners(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            pageno: f"{name} {pagetype}"
            for name, pageno, pagetype in conn.execute("SELECT name, pageno, pagetype FROM dbstat")
        }
    finally:
        conn.close()


async def _measure(args: argparse.Namespace, tmp: Path) -> None:
    path = tmp / "events.db"
    settings = StoreSettings(
        durability="normal",  # frames are the same; the prefill goes faster
        checkpoint_interval_seconds=None,
        wal_autocheckpoint_pages=0,
    )
    store = EventStore(path, settings)
    await store.start()
    try:
        for _ in range(args.runs - 1):
            await _one_at_a_time(store, args.kind, _id_maker(args.ids), args.events)
        wal = path.with_name(path.name + "-wal")
        page_size = store.settings.page_size
        before = len(_frames(wal, page_size))
        measured = _id_maker(args.ids)
        sample = [measured() for _ in range(3)]
        await _one_at_a_time(store, args.kind, measured, args.events - 3)
        frames = _frames(wal, page_size)[before:]
        owners = _owners(path)
    finally:
        await store.stop()
    commits = sum(1 for _, commit in frames if commit)
    by_owner = collections.Counter(owners.get(pgno, "(freed)") for pgno, _ in frames)
    print(
        f"{args.kind}, ids {args.ids} (e.g. {sample[0]}), {args.runs} runs of {args.events} "
        f"events, the last measured: {commits} commits"
    )
    print(f"  frames per commit: {len(frames) / commits:6.2f}")
    print(f"  WAL bytes per commit: {len(frames) * (_FRAME_HEADER + page_size) / commits:8.0f}")
    for owner, count in sorted(by_owner.items(), key=lambda kv: -kv[1]):
        print(f"    {owner:<34} {count / commits:6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", default="gw", help="gw, hex or padN (default gw)")
    parser.add_argument("--kind", choices=("archive", "pending"), default="archive")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.ids not in ("gw", "hex") and not (
        args.ids.startswith("pad") and args.ids[3:].isdigit()
    ):
        parser.error("--ids: gw, hex or padN")
    with tempfile.TemporaryDirectory(prefix="gwproactor-profile-wal-") as tmp:
        asyncio.run(_measure(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
