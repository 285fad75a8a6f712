"""gwproactor against raw paho-mqtt 2.x on the same workloads: the issue 5 benchmark.

    .venv/bin/python scripts/bench.py            # 5 rounds, about 4 minutes on 2 cores
    .venv/bin/python scripts/bench.py --quick    # a smoke run, well under a minute
    .venv/bin/python scripts/bench.py --rounds 3 --only receive,latency --json out.json
    .venv/bin/python scripts/bench.py --only flash   # bytes written per event (flash wear)

It starts its own mosquitto on a free loopback port (never the system broker), runs raw
paho and gwproactor interleaved over several rounds, each receiver/publisher/probe in its
own fresh subprocess, and prints every figure with min / median / max over the rounds,
each ratio gwproactor/raw computed per round, and PASS/FAIL against the issue's targets
(judged on the median). Everything it started (subprocesses, broker, temp dir) is stopped
and removed at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _bench_figures import build_figures, integrity_warnings  # noqa: E402
from _bench_flash import render as render_flash  # noqa: E402
from _bench_flash import run_flash  # noqa: E402
from _bench_procs import BenchError, Workers  # noqa: E402
from _bench_report import render_table, verdict_summary  # noqa: E402
from _bench_rounds import SECTIONS, Plan, Round  # noqa: E402
from _bench_wire import ENVELOPE_BYTES, Json  # noqa: E402

from gwproactor.testing.mosquitto import Mosquitto, MosquittoError, find_mosquitto  # noqa: E402

# "flash" runs once after the rounds (absolute figures of gwproactor, no raw-paho side).
FLASH = "flash"
ALL_SECTIONS = (*SECTIONS, FLASH)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark gwproactor against raw paho-mqtt (issue 5).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 2)")
    parser.add_argument("--quick", action="store_true", help="small counts, 2 rounds: a smoke run")
    parser.add_argument(
        "--only",
        default=",".join(ALL_SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(ALL_SECTIONS)})",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="save results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (worker and broker logs)"
    )
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {ALL_SECTIONS}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.flash = FLASH in sections
    args.sections = tuple(s for s in sections if s != FLASH)
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan.quick(rounds=args.rounds or 2, sections=args.sections)
    return Plan(rounds=args.rounds or 5, sections=args.sections)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the clean-up (bounded) short and leave orphans.
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    print("\nstopping everything that was started...", file=sys.stderr, flush=True)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def environment(broker: Mosquitto) -> Json:
    import paho.mqtt

    version = subprocess.run(
        [str(find_mosquitto()), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "python": platform.python_version(),
        "paho_mqtt": paho.mqtt.__version__,
        "mosquitto": version[0] if version else "?",
        "broker": f"{broker.host}:{broker.port}",
        "cpus": _cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg()[0],
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def print_intro(plan: Plan, env: Json) -> None:
    print(
        f"gwproactor benchmark: {plan.rounds} round(s), sections {', '.join(plan.sections)}\n"
        f"  Python {env['python']}, paho-mqtt {env['paho_mqtt']}, {env['mosquitto']}, "
        f"{env['cpus']} CPU(s), private broker on {env['broker']}\n"
        f"  workload: {ENVELOPE_BYTES}-byte JSON envelopes, distinct message ids; "
        f"receive {plan.receive_qos0:,} at QoS0 / {plan.receive_qos1:,} at QoS1; "
        f"publish {plan.publish_qos0:,} / {plan.publish_qos1:,}; "
        f"latency {plan.latency_messages:,} at {plan.latency_rate:,} msg/s (QoS0 and QoS1); "
        f"dedup {plan.dedup_messages:,}; raw topics {plan.raw_messages:,}\n"
        "  TCP_NODELAY is set on every socket: gwproactor's default, the raw paho clients "
        "after connect, and the raw-socket publisher and subscriber.\n"
        "  load: a raw-socket publisher writing pre-built PUBLISH packets (its own rate is "
        "shown); the publish workload is counted by a raw-socket subscriber (its capacity "
        "is shown).",
        flush=True,
    )
    load = env["load_average_at_start"]
    if load >= env["cpus"] / 2:
        print(
            f"  NOTE: load average {load:.1f} on {env['cpus']} CPU(s) before starting: other "
            "processes compete for the CPUs, so expect noisy figures (wider min..max).",
            flush=True,
        )


def run(plan: Plan, work_dir: Path, flash: Json) -> tuple[Json, list[Json]]:
    broker = Mosquitto(
        work_dir / "broker",
        name="bench-broker",
        log_types=("error", "warning"),
        # A receiver slower than the burst must get every message, not lose the tail.
        max_queued_messages=10_000_000,
    )
    (work_dir / "broker").mkdir()
    (work_dir / "logs").mkdir()
    rounds: list[Json] = []
    with (
        broker,
        Workers(work_dir / "logs", work_dir / "state") as workers,
    ):  # entering the broker starts it
        env = environment(broker)
        if plan.sections:
            print_intro(plan, env)
        else:
            print(f"gwproactor benchmark: Python {env['python']}, {env['cpus']} CPU(s)", flush=True)
        for index in range(plan.rounds if plan.sections else 0):
            started = time.monotonic()
            print(f"round {index + 1}/{plan.rounds} (order: ", end="", flush=True)
            one = Round(index, plan, workers, broker.port)
            print(f"{' then '.join(one.sides)})", flush=True)
            result = one.run()
            result["seconds"] = time.monotonic() - started
            rounds.append(result)
            workers.stop_all()
        if "run" in flash:
            print(
                "flash wear: 4 cases at once (2 events/s and a burst, durability full and "
                "normal)...",
                flush=True,
            )
            flash["rows"] = run_flash(broker.port, work_dir, flash["quick"])
    return env, rounds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    # Start-up is measured: compile gwproactor's bytecode first, as an installed package
    # has it (an editable checkout under PYTHONDONTWRITEBYTECODE would compile at each start).
    root = Path(__file__).resolve().parents[1]
    for package in ("gwproactor",):
        compileall.compile_dir(root / package, quiet=1)
    # Explicitly, also for SIGINT: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="gwproactor-bench-"))
    started = time.monotonic()
    try:
        flash: Json = {"run": True, "quick": args.quick} if args.flash else {}
        env, rounds = run(plan, work_dir, flash)
    except KeyboardInterrupt:
        print("\ninterrupted: every subprocess and the broker were stopped", file=sys.stderr)
        return 130
    except (BenchError, MosquittoError, RuntimeError) as e:
        print(f"\nbenchmark failed: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"work directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    figures = build_figures(rounds, plan) if rounds else []
    if rounds:
        print()
        print(render_table(figures))
        for warning in integrity_warnings(rounds):
            print(f"WARNING: {warning}")
        print()
        print(verdict_summary(figures))
    if flash.get("rows"):
        print()
        print(render_flash(flash["rows"]))
    print(
        f"total time {elapsed:.0f} s; load average (1 min) {env['load_average_at_start']:.1f} "
        f"at start, {os.getloadavg()[0]:.1f} at the end, {env['cpus']} CPU(s)"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "environment": env,
                    "plan": plan.as_json(),
                    "seconds": elapsed,
                    "figures": [f.as_json() for f in figures],
                    "rounds": rounds,
                    "flash": flash.get("rows", []),
                },
                indent=2,
            )
        )
        print(f"results saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
