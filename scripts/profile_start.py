"""Where start-up goes: a fresh process per run, phase by phase (the benchmark's ``start-gw``
workload: two links, one payload registered), with the figures the machine's load does not
disturb next to the ones it does.

    .venv/bin/python scripts/profile_start.py                 # phases: ms (CPU), VmRSS, modules
    .venv/bin/python scripts/profile_start.py --runs 5        # median of 5 fresh processes
    .venv/bin/python scripts/profile_start.py --deps-first    # python/asyncio/paho/pydantic first
    .venv/bin/python scripts/profile_start.py --modules       # which modules each phase imports

Phases: ``import`` (what the benchmark's worker imports: gwproactor and the payload's
class), ``settings`` (ProactorSettings of two links), ``construct`` (Proactor(...)),
``start`` (start until both links have their subscriptions acked, against a private
mosquitto on a free port). ``--deps-first`` imports asyncio, sqlite3, paho.mqtt.client and
pydantic (a BaseModel built) before ``import``, so that its figures are gwproactor's own.
Counts: modules in ``sys.modules``, pydantic models whose schema was built, dataclasses.
Also see ``python -X importtime`` and ``scripts/profile_start.py --cprofile``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent

_CHILD = r"""
import sys, time, os, json
t_launch = time.monotonic_ns()
cpu_launch = time.process_time()
sys.path[:0] = [{scripts!r}, {repo!r}]
phases = []
mods_before = set(sys.modules)

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def subclasses(c):
    for s in c.__subclasses__():
        yield s
        yield from subclasses(s)

def built_models():
    if "pydantic" not in sys.modules:
        return []
    import pydantic
    return [c for c in set(subclasses(pydantic.BaseModel))
            if c.__dict__.get("__pydantic_complete__")
            and "Mock" not in type(c.__dict__.get("__pydantic_validator__")).__name__]

def mark(name):
    global mods_before
    t, cpu, kib = time.monotonic_ns(), time.process_time(), rss()
    now = set(sys.modules)
    built = built_models()
    phases.append({{"phase": name, "wall_ms": (t - t_launch) / 1e6,
                    "cpu_ms": cpu * 1e3, "rss_kib": kib,
                    "modules": len(now), "new": sorted(now - mods_before),
                    "built": len(built),
                    "built_gw": sorted(c.__module__ + "." + c.__qualname__ for c in built
                                       if c.__module__.startswith("gwproactor"))}})
    mods_before = now
    if name == {upto!r}:
        sys.stdout.flush()
        os._exit(0)

mark("python")
if {deps_first}:
    import asyncio, sqlite3, paho.mqtt.client
    import pydantic
    class _Warm(pydantic.BaseModel):
        x: int
    mark("deps")
import asyncio
from _bench_gw import BenchReading, bench_settings, start_subscribed
from gwproactor import MessageRegistry, Proactor
mark("import")
cfg = {{"port": {port}, "state_dir": {state!r}}}
settings = bench_settings(cfg, 1, {{"child0": "child0", "child1": "child1"}})
mark("settings")

async def main():
    proactor = Proactor(settings, MessageRegistry(BenchReading))
    mark("construct")
    try:
        await start_subscribed(proactor)
        mark("start")
    finally:
        await proactor.stop_and_join()

asyncio.run(main())
print("RESULT " + json.dumps({{"phases": phases}}))
"""


def child_code(port: int, state: Path, deps_first: bool, upto: str = "") -> str:
    return _CHILD.format(
        scripts=str(SCRIPTS),
        repo=str(REPO),
        port=port,
        state=str(state),
        deps_first=deps_first,
        upto=upto,
    )


_RAW_CHILD = r"""
import os, sys
sys.path[:0] = [{scripts!r}]
from _bench_raw import start_paho
start_paho({{"port": {port}, "launch_ns": 0, "idle_seconds": 0}})
sys.stdout.flush()
os._exit(0)
"""


_VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def instructions(port: int, state: Path, deps_first: bool, upto: str) -> int:
    """Instructions (valgrind's callgrind) a fresh process runs from its start to ``upto``
    (``raw``: the benchmark's raw paho start, two clients subscribed)."""
    if upto == "raw":
        code = _RAW_CHILD.format(scripts=str(SCRIPTS), port=port)
    else:
        code = child_code(port, state, deps_first, upto)
    out = subprocess.run(
        [*_VALGRIND, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[1].replace(",", ""))
    raise RuntimeError(out.stderr[-3000:])


def run_once(port: int, state: Path, deps_first: bool) -> dict[str, Any]:
    code = child_code(port, state, deps_first)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise RuntimeError(out.stderr[-3000:])


def _print_phases(results: list[dict[str, Any]], runs: int, *, modules: bool, models: bool) -> None:
    print(f"load average {os.getloadavg()}; median of {runs} fresh processes")
    print(
        f"{'phase':10} {'wall ms':>8} {'cpu ms':>8} {'+cpu':>7} {'VmRSS MiB':>10} "
        f"{'+MiB':>6} {'modules':>8} {'+mod':>5} {'models built':>12}"
    )
    keys = ("wall_ms", "cpu_ms", "rss_kib", "modules", "built")
    prev: dict[str, float] | None = None
    seen: set[str] = set()
    for i, phase in enumerate(results[0]["phases"]):
        row = {key: float(statistics.median(r["phases"][i][key] for r in results)) for key in keys}
        d_cpu = row["cpu_ms"] - prev["cpu_ms"] if prev else 0.0
        d_rss = (row["rss_kib"] - prev["rss_kib"]) / 1024 if prev else 0.0
        d_mod = row["modules"] - prev["modules"] if prev else 0
        print(
            f"{phase['phase']:10} {row['wall_ms']:8.1f} {row['cpu_ms']:8.1f} {d_cpu:7.1f} "
            f"{row['rss_kib'] / 1024:10.1f} {d_rss:6.1f} {row['modules']:8.0f} {d_mod:5.0f} "
            f"{row['built']:12.0f}"
        )
        prev = row
        if modules:
            print("    new modules: " + " ".join(phase["new"]))
        if models:
            new = [name for name in phase["built_gw"] if name not in seen]
            seen.update(new)
            print("    gwproactor models built: " + " ".join(new))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deps-first", action="store_true")
    parser.add_argument("--modules", action="store_true", help="list each phase's new modules")
    parser.add_argument("--models", action="store_true", help="list gwproactor's built models")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per phase under valgrind (deterministic; ~15 s per phase)",
    )
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO)]
    import compileall

    compileall.compile_dir(REPO / "gwproactor", quiet=1)
    from gwproactor.testing.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="gwproactor-profile-start-") as tmp:
        (Path(tmp) / "broker").mkdir()
        broker = Mosquitto(Path(tmp) / "broker", name="profile-broker", log_types=("error",))
        with broker:
            if args.instructions:
                print("instructions (callgrind, whole process from its start), millions:")
                phases = ["python", "deps", "import", "settings", "construct", "start"]
                if not args.deps_first:
                    phases.remove("deps")
                prev = 0
                for n, phase in enumerate(phases):
                    state = Path(tmp) / f"istate{n}"
                    state.mkdir()
                    count = instructions(broker.port, state, args.deps_first, phase)
                    print(f"  {phase:10} {count / 1e6:9.1f}  +{(count - prev) / 1e6:8.1f}")
                    prev = count
                raw = instructions(broker.port, Path(tmp), False, "raw")
                print(f"  raw paho   {raw / 1e6:9.1f}  (gwproactor/raw {prev / raw:.2f})")
                return 0
            results = []
            for n in range(args.runs):
                state = Path(tmp) / f"state{n}"
                state.mkdir()
                results.append(run_once(broker.port, state, args.deps_first))
    _print_phases(results, args.runs, modules=args.modules, models=args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
