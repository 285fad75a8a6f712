"""Profile gwproactor's receive path: where does the time per message go?

    .venv/bin/python scripts/profile_receive.py                 # QoS0, 50,000 messages
    .venv/bin/python scripts/profile_receive.py --qos 1 --count 20000 --top 30
    .venv/bin/python scripts/profile_receive.py --raw-filters 1000   # raw-topic routing
    .venv/bin/python scripts/profile_receive.py --dedup-window 65536 # a full dedup window

Starts a private mosquitto on a free loopback port, then runs the benchmark's gwproactor
receiver (link → decode → receive queue → dispatch → counting actor) twice, each time fed a
burst by the raw-socket publisher:

1. under cProfile, and prints the top functions by total (own) time and by cumulative time;
2. under py-spy (if installed: ``.venv/bin/pip install py-spy``), sampling the unmodified
   process, and prints the top functions by own samples and by inclusive samples. py-spy
   does not slow the code down the way cProfile's per-call hooks do, so its shares are the
   truer ones; cProfile's call counts tell how many calls per message each function makes.

Everything it started is stopped at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import FrameType

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _bench_procs import BenchError, Workers  # noqa: E402
from _bench_wire import RAW_TOPIC, Json  # noqa: E402

from gwproactor.testing.mosquitto import Mosquitto, MosquittoError  # noqa: E402

_TIMEOUT_S = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Profile gwproactor's receive path.")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--count", type=int, default=50_000, help="messages in the burst")
    parser.add_argument("--top", type=int, default=25, help="rows per listing")
    parser.add_argument("--no-py-spy", action="store_true", help="cProfile only")
    parser.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    parser.add_argument(
        "--raw-filters", type=int, default=0, help="receive on a raw topic with N raw filters"
    )
    parser.add_argument(
        "--dedup-window", type=int, default=0, help="a full de-duplication window of N ids"
    )
    return parser.parse_args(argv)


_EXTRA: Json = {}  # the receiver's and publisher's options from the command line


def receive(
    workers: Workers, port: int, qos: int, count: int, profile: Path | None
) -> tuple[Json, int]:
    """Run one receiver (optionally under cProfile) fed by a burst; (result, its pid)."""
    cfg: Json = {"port": port, "qos": qos, "count": count, "mode": "throughput", **_EXTRA}
    if profile is not None:
        cfg["profile"] = str(profile)
    receiver = workers.spawn("receive-gw", cfg)
    receiver.expect("READY", _TIMEOUT_S)
    publisher = workers.spawn("publish-burst", _burst(port, qos, count))
    publisher.result(_TIMEOUT_S)
    return receiver.result(_TIMEOUT_S), receiver.process.pid


def _burst(port: int, qos: int, count: int) -> Json:
    cfg: Json = {"port": port, "qos": qos, "count": count}
    if _EXTRA.get("raw_filters"):
        cfg["topic"] = RAW_TOPIC
    return cfg


def print_cprofile(path: Path, top: int) -> None:
    for key, title in (("tottime", "own time (tottime)"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\n== cProfile: top {top} by {title} ==")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


def run_py_spy(
    py_spy: str, workers: Workers, port: int, qos: int, count: int, rate: int, out: Path
) -> Json | None:
    """Sample a receiver with ``py-spy record --format raw`` while it works."""
    cfg: Json = {"port": port, "qos": qos, "count": count, "mode": "throughput", **_EXTRA}
    receiver = workers.spawn("receive-gw", cfg)
    receiver.expect("READY", _TIMEOUT_S)
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(receiver.process.pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        publisher = workers.spawn("publish-burst", _burst(port, qos, count))
        publisher.result(_TIMEOUT_S)
        result = receiver.result(_TIMEOUT_S)
        _, err = spy.communicate(timeout=30)
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    if not out.exists():
        print(f"\npy-spy produced no profile: {err.decode(errors='replace').strip()}")
        return None
    return result


def print_py_spy(path: Path, top: int) -> None:
    """Own and inclusive samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        count = int(samples)
        frames = [_short(frame) for frame in stack.split(";")]
        # The first frame is the thread ("process 123:"/"thread 0x.."): not a function.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        print("\npy-spy: no samples")
        return
    for title, counter in (("own samples", own), ("inclusive samples", inclusive)):
        print(f"\n== py-spy: top {top} by {title} ({total} samples) ==")
        for frame, count in counter.most_common(top):
            print(f"{count / total * 100:6.1f}%  {frame}")


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` → ``func (module.py)``: merge a function's lines."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({Path(file).name})" if file else name


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the clean-up (bounded) short and leave orphans.
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    print("\nstopping everything that was started...", file=sys.stderr, flush=True)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.raw_filters:
        _EXTRA["raw_filters"] = args.raw_filters
    if args.dedup_window:
        _EXTRA["dedup_window"] = args.dedup_window
    # Explicitly, also for SIGINT: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="gwproactor-profile-"))
    (work_dir / "broker").mkdir()
    (work_dir / "logs").mkdir()
    broker = Mosquitto(
        work_dir / "broker",
        name="profile-broker",
        log_types=("error", "warning"),
        max_queued_messages=10_000_000,
    )
    py_spy = (
        None if args.no_py_spy else shutil.which("py-spy", path=str(Path(sys.executable).parent))
    )
    try:
        with broker, Workers(work_dir / "logs", work_dir / "state") as workers:
            profile = work_dir / "receive.prof"
            result, _ = receive(workers, broker.port, args.qos, args.count, profile)
            print(
                f"gwproactor receive, QoS{args.qos}, {args.count:,} messages under cProfile: "
                f"{result['rate']:,.0f} msg/s, {result['cpu_us_per_msg']:.1f} µs CPU per message "
                "(cProfile's hooks inflate both)"
            )
            print_cprofile(profile, args.top)
            if py_spy is None:
                print("\npy-spy not installed (.venv/bin/pip install py-spy): skipped")
                return 0
            spy_out = work_dir / "receive.pyspy.txt"
            spied = run_py_spy(
                py_spy, workers, broker.port, args.qos, args.count, args.rate, spy_out
            )
            if spied is not None:
                print(
                    f"\ngwproactor receive under py-spy: {spied['rate']:,.0f} msg/s, "
                    f"{spied['cpu_us_per_msg']:.1f} µs CPU per message"
                )
                print_py_spy(spy_out, args.top)
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
