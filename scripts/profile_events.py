"""System calls and machine instructions per awaited ``generate_event``, by thread.

    .venv/bin/python scripts/profile_events.py syscalls             # strace -f, per event
    .venv/bin/python scripts/profile_events.py callgrind            # valgrind, per event
    .venv/bin/python scripts/profile_events.py callgrind --what bare --top 30

``--what``: ``awaited`` (a gateway without links, as the benchmark's awaited worker: its
events are archived), ``bare`` (the benchmark's bare commit of the same rows, on this
thread) or ``floor`` (the same bare commit done by a plain thread, awaited from the loop:
the least a loop-plus-writer-thread design pays). Durability ``full``, as in the benchmark.

``syscalls`` runs the workload under ``strace -f`` and counts the system calls made between
two ``getppid()`` markers around ``--count`` events, per thread (the loop's is the main
thread). ``callgrind`` runs it twice under ``valgrind --tool=callgrind --separate-threads=yes``
(``--count`` and 3 x ``--count`` events) and prints the difference divided by 2 x
``--count``: user-space instructions per event of each thread with start-up and warm-up
cancelled out, and the top functions of each. Both are counts, not times: a loaded machine
does not change them. State goes to a temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

_WARM = 100
_PREBUILT = 2_000  # events built before the markers, the same number in every run


async def _workload(what: str, count: int, state_dir: Path) -> None:
    """``count`` events of ``what`` between two getppid() markers, after a warm-up."""
    from _bench_events import BareCommits, BenchEvent, HandoffFloor
    from _bench_events import _events as make_events
    from _bench_events import _settings as gateway_settings
    from _bench_wire import CHILD
    from result import Ok

    from gwproactor import MessageRegistry, Proactor

    events = make_events(_PREBUILT, what)
    proactor = Proactor(gateway_settings(CHILD, state_dir, {}), MessageRegistry(BenchEvent))
    await proactor.start()
    try:
        for event in make_events(_WARM, "warm"):
            await proactor.generate_event(event)
        path = proactor.store.path
        if what == "awaited":
            for event in events[:_WARM]:
                assert isinstance(await proactor.generate_event(event), Ok)
            os.getppid()
            for event in events[_WARM : _WARM + count]:
                assert isinstance(await proactor.generate_event(event), Ok)
            os.getppid()
        elif what == "bare":
            bare = BareCommits(path, events)
            bare.run(slice(0, _WARM))
            os.getppid()
            bare.run(slice(_WARM, _WARM + count))
            os.getppid()
            bare.close()
        else:
            floor = HandoffFloor(path, events)
            await floor.run(slice(0, _WARM))
            os.getppid()
            await floor.run(slice(_WARM, _WARM + count))
            os.getppid()
            floor.close()
    finally:
        await proactor.stop_and_join()


def _run_workload(what: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gwproactor-profile-events-") as tmp:
        asyncio.run(_workload(what, count, Path(tmp)))


def _child(what: str, count: int) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "_run",
        "--what",
        what,
        "--count",
        str(count),
    ]


def syscalls(what: str, count: int) -> None:
    strace = shutil.which("strace")
    if strace is None:
        sys.exit("strace is not installed")
    with tempfile.TemporaryDirectory(prefix="gwproactor-strace-") as tmp:
        out = Path(tmp) / "trace"
        subprocess.run([strace, "-f", "-o", str(out), *_child(what, count)], check=True)
        lines = out.read_text().splitlines()
    main_pid = lines[0].split()[0]
    marks = [i for i, line in enumerate(lines) if "getppid()" in line]
    if len(marks) < 2:
        sys.exit("no markers in the trace")
    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in lines[marks[0] + 1 : marks[1]]:
        pid, rest = line.split(None, 1)
        if rest.startswith("<..."):  # the end of a call counted when it started
            continue
        role = "loop" if pid == main_pid else f"thread {pid}"
        calls[(role, rest.split("(", 1)[0])] += 1
    totals: collections.Counter[str] = collections.Counter()
    print(f"system calls per {what} event ({count} events, strace -f)")
    for (role, name), n in sorted(calls.items()):
        print(f"  {role:<14} {name:<16} {n / count:6.2f}")
        totals[role] += n
    for role, n in sorted(totals.items()):
        print(f"  {role:<14} {'total':<16} {n / count:6.2f}")
    print(f"  {'all threads':<31} {sum(totals.values()) / count:6.2f}")


_COST = re.compile(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")


def _by_function(path: Path) -> collections.Counter[str]:
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        match = _COST.match(line)
        if match and "PROGRAM TOTALS" not in line:
            name = re.sub(r" \[.*\]$", "", match.group(2))
            name = re.sub(r"^.*/Python-3[^/]*/", "", name)
            costs[name] += int(match.group(1).replace(",", ""))
    return costs


def callgrind(what: str, count: int, top: int) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None or shutil.which("callgrind_annotate") is None:
        sys.exit("valgrind is not installed")
    with tempfile.TemporaryDirectory(prefix="gwproactor-callgrind-") as tmp:
        runs = {}
        for n in (count, 3 * count):
            out = Path(tmp) / f"cg-{n}" / "out"
            out.parent.mkdir()
            subprocess.run(
                [
                    valgrind,
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    f"--callgrind-out-file={out}",
                    *_child(what, n),
                ],
                check=True,
                capture_output=True,
            )
            runs[n] = {p.name.rsplit("-", 1)[-1]: _by_function(p) for p in out.parent.glob("out-*")}
        per = 2 * count
        print(f"instructions per {what} event (callgrind; {3 * count} - {count} events)")
        for thread in sorted(runs[count]):
            low, high = runs[count][thread], runs[3 * count].get(thread, collections.Counter())
            diff = {name: (high[name] - low.get(name, 0)) / per for name in high}
            role = "loop" if thread == "01" else f"thread {thread}"
            print(f"\n== {role}: {sum(diff.values()):,.0f} per event")
            for name, cost in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
                print(f"{cost:10,.0f}  {name[:120]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("syscalls", "callgrind", "_run"))
    parser.add_argument("--what", choices=("awaited", "bare", "floor"), default="awaited")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--top", type=int, default=15, help="functions per thread (callgrind)")
    args = parser.parse_args(argv)
    if args.count * 3 + _WARM > _PREBUILT:
        parser.error(f"--count at most {(_PREBUILT - _WARM) // 3}")
    if args.mode == "_run":
        _run_workload(args.what, args.count)
    elif args.mode == "syscalls":
        syscalls(args.what, args.count)
    else:
        callgrind(args.what, args.count, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
