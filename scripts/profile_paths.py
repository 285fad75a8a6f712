"""Profile gwproactor's other paths: publishing from an actor, awaited events, start-up.

    .venv/bin/python scripts/profile_paths.py publish --qos 0     # actor → link → broker
    .venv/bin/python scripts/profile_paths.py events --count 500  # awaited generate_event
    .venv/bin/python scripts/profile_paths.py start               # imports (-X importtime)

``publish`` and ``events`` run the benchmark's worker for that workload under cProfile (top
functions by own and cumulative time), then again under py-spy (``.venv/bin/pip install
py-spy``; own and inclusive samples), like ``profile_receive.py`` does for the receive path.
``start`` prints the slowest imports of ``import gwproactor`` (self and cumulative µs).
Everything it started is stopped at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _bench_procs import BenchError, Worker, Workers  # noqa: E402
from _bench_wire import Json  # noqa: E402
from profile_receive import _raise_interrupt, print_cprofile, print_py_spy  # noqa: E402

from gwproactor.testing.mosquitto import Mosquitto, MosquittoError  # noqa: E402

_TIMEOUT_S = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Profile gwproactor's other paths.")
    parser.add_argument("path", choices=("publish", "events", "start"))
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--count", type=int, default=None, help="messages or events")
    parser.add_argument("--top", type=int, default=25, help="rows per listing")
    parser.add_argument("--no-py-spy", action="store_true", help="cProfile only")
    parser.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    return parser.parse_args(argv)


def _publish(workers: Workers, port: int, qos: int, count: int, profile: Path | None) -> Worker:
    subscriber = workers.spawn("subscribe-count", {"port": port, "qos": qos, "count": count})
    subscriber.expect("READY", _TIMEOUT_S)
    cfg: Json = {"port": port, "qos": qos, "count": count, "timeout": _TIMEOUT_S}
    if profile is not None:
        cfg["profile"] = str(profile)
    publisher = workers.spawn("publish-gw", cfg)
    publisher.expect("READY", _TIMEOUT_S)
    subscriber.result(_TIMEOUT_S)
    publisher.command("stop")
    return publisher


def _events(workers: Workers, count: int, profile: Path | None) -> Worker:
    cfg: Json = {"count": count}
    if profile is not None:
        cfg["profile"] = str(profile)
    return workers.spawn("events-awaited", cfg)


def _spy(py_spy: str, pid: int, rate: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"),
            *("--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(spy: subprocess.Popen[bytes]) -> None:
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def profile_start(top: int, runs: int = 5) -> None:
    """``-X importtime`` of ``import gwproactor``, ``runs`` times: each module's best (the
    machine is shared; the minimum is the least disturbed figure)."""
    best: dict[str, tuple[int, int]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import gwproactor"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            fields = [p.strip() for p in line[len("import time:") :].split("|")]
            own, cumulative, name = int(fields[0]), int(fields[1]), fields[2]
            was = best.get(name)
            best[name] = (
                (own, cumulative) if was is None else (min(was[0], own), min(was[1], cumulative))
            )
    rows = [(own, cumulative, name) for name, (own, cumulative) in best.items()]
    total = best.get("gwproactor", (0, 0))[1]
    print(f"import gwproactor: {total / 1000:.1f} ms cumulative (best of {runs})")
    for index, title in ((0, "self"), (1, "cumulative")):
        print(f"\n== slowest imports by {title} time (µs) ==")
        ranked = sorted(rows, key=lambda row: row[index], reverse=True)
        for own, cumulative, name in ranked[:top]:
            print(f"{own:>9,} {cumulative:>10,}  {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.path == "start":
        profile_start(args.top)
        return 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    count = args.count or (30_000 if args.path == "publish" else 500)
    work_dir = Path(tempfile.mkdtemp(prefix="gwproactor-profile-"))
    (work_dir / "broker").mkdir()
    (work_dir / "logs").mkdir()
    broker = Mosquitto(work_dir / "broker", name="profile-broker", log_types=("error",))
    py_spy = (
        None if args.no_py_spy else shutil.which("py-spy", path=str(Path(sys.executable).parent))
    )
    try:
        with broker, Workers(work_dir / "logs", work_dir / "state") as workers:

            def run(profile: Path | None) -> Worker:
                if args.path == "publish":
                    return _publish(workers, broker.port, args.qos, count, profile)
                return _events(workers, count, profile)

            prof = work_dir / "run.prof"
            result = run(prof).result(_TIMEOUT_S)
            print(f"{args.path} under cProfile (its hooks inflate the figures): {result}")
            print_cprofile(prof, args.top)
            if py_spy is None:
                print("\npy-spy not installed (.venv/bin/pip install py-spy): skipped")
                return 0
            out = work_dir / "run.pyspy.txt"
            if args.path == "publish":
                # The publisher is sampled from READY (connected) to its end.
                subscriber = workers.spawn(
                    "subscribe-count", {"port": broker.port, "qos": args.qos, "count": count}
                )
                subscriber.expect("READY", _TIMEOUT_S)
                cfg: Json = {"port": broker.port, "qos": args.qos, "count": count}
                publisher = workers.spawn("publish-gw", {**cfg, "timeout": _TIMEOUT_S})
                publisher.expect("READY", _TIMEOUT_S)
                spy = _spy(py_spy, publisher.process.pid, args.rate, out)
                subscriber.result(_TIMEOUT_S)
                publisher.command("stop")
                result = publisher.result(_TIMEOUT_S)
            else:
                worker = _events(workers, count, None)
                spy = _spy(py_spy, worker.process.pid, args.rate, out)
                result = worker.result(_TIMEOUT_S)
            _stop(spy)
            print(f"\n{args.path} under py-spy: {result}")
            if out.exists():
                print_py_spy(out, args.top)
    except KeyboardInterrupt:
        print("\ninterrupted: every subprocess and the broker were stopped", file=sys.stderr)
        return 130
    except (BenchError, MosquittoError) as e:
        print(f"\nprofiling failed: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
