"""What a lone message costs a receiver, gwproactor's next to raw paho's, in counts that the
machine's load does not change (the latency benchmark at 1,000 msg/s is noisy on a busy
machine, and at that rate every message arrives alone: a wake-up per message).

    .venv/bin/python scripts/profile_latency.py opcodes --qos 1     # bytecode, split at the actor
    .venv/bin/python scripts/profile_latency.py callgrind --qos 0      # machine instructions
    .venv/bin/python scripts/profile_latency.py strace --qos 1         # system calls, in order

Each starts a private mosquitto on a free loopback port and feeds the benchmark's receivers
(``receive-gw``: link → decode → queue → dispatch → counting actor; ``receive-raw``: paho's
``loop_forever`` and ``on_message``) with the raw-socket paced publisher, slowly enough that
every message arrives alone even under the tool.

``opcodes``: Python opcodes per message on the receiver's main thread, in two parts: from
the wake-up (asyncio's ``epoll.poll``, paho's ``select`` returning) to the actor (the
message's latency), and from the actor to the next wake-up (CPU only: acks flushed, the
loop going back to sleep); the top functions of each.

``callgrind``: ``valgrind --tool=callgrind`` machine instructions (user space, C included:
pydantic, the interpreter, syscall wrappers) per message: the counters are zeroed after a
warm-up, ``--count`` messages are counted, then the same time idle is counted and taken
off. Slow (start-up under valgrind takes a minute or more); the top functions by own
instructions are printed with ``--top``.

``strace``: ``strace -f -tt`` of network and epoll calls of the receiver for a few
messages: what happens before the actor sees a message, and what after.

Everything it started is stopped at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _bench_procs import BenchError, Worker, Workers  # noqa: E402
from _bench_wire import Json  # noqa: E402
from profile_receive import _raise_interrupt  # noqa: E402

from gwproactor.testing.mosquitto import Mosquitto, MosquittoError  # noqa: E402

_TIMEOUT_S = 600.0
_SIDES = ("gw", "raw")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A lone message's cost to a receiver.")
    parser.add_argument("tool", choices=("opcodes", "callgrind", "strace"))
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--side", choices=(*_SIDES, "both"), default="both")
    parser.add_argument("--count", type=int, default=None, help="messages counted")
    parser.add_argument("--rate", type=int, default=None, help="messages per second")
    parser.add_argument("--top", type=int, default=20, help="rows per listing")
    return parser.parse_args(argv)


def _receiver(
    workers: Workers, side: str, port: int, qos: int, count: int, prefix: tuple[str, ...] = ()
) -> Worker:
    cfg: Json = {"port": port, "qos": qos, "count": count, "mode": "latency", "idle_timeout": 60}
    return workers.spawn(f"receive-{side}", cfg, prefix)


def _publish(workers: Workers, port: int, qos: int, count: int, rate: int) -> None:
    cfg: Json = {"port": port, "qos": qos, "count": count, "rate": rate}
    workers.spawn("publish-paced", cfg).result(_TIMEOUT_S)


def opcodes(workers: Workers, work_dir: Path, port: int, args: argparse.Namespace) -> None:
    count = args.count or 400
    warm = 50
    rate = args.rate or 100
    results: dict[str, Json] = {}
    for side in _sides(args):
        out = work_dir / f"trace-{side}.json"
        cfg: Json = {
            "port": port,
            "qos": args.qos,
            "count": warm + count,
            "mode": "latency",
            "trace_lone": str(out),
            "trace_warm": warm,
        }
        receiver = workers.spawn(f"receive-{side}", cfg)
        receiver.expect("READY", _TIMEOUT_S)
        _publish(workers, port, args.qos, warm + count, rate)
        receiver.result(_TIMEOUT_S)
        results[side] = json.loads(out.read_text())
    for side, result in results.items():
        print(
            f"\n== {side}, QoS{args.qos}: {result['critical_per_message']:,.1f} opcodes from the "
            f"wake-up to the actor, {result['after_per_message']:,.1f} after it "
            f"({result['messages']} lone messages, {result['wakeups_per_message']:.2f} wake-ups "
            "each) =="
        )
        for title, key in (("to the actor", "critical"), ("after the actor", "after")):
            print(f"  -- {title}")
            for name, per in result[key][: args.top]:
                print(f"  {per:9.1f}  {name}")


def callgrind(workers: Workers, work_dir: Path, port: int, args: argparse.Namespace) -> None:
    valgrind = shutil.which("valgrind")
    control = shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise SystemExit("valgrind (callgrind) is not installed")
    count = args.count or 1000
    rate = args.rate or 100
    warm = 30
    figures: dict[str, float] = {}
    for side in _sides(args):
        out = work_dir / f"callgrind-{side}.out"
        prefix = (
            valgrind,
            "--tool=callgrind",
            "--compress-strings=no",  # each dump names its functions: annotated alone
            f"--callgrind-out-file={out}",
        )
        receiver = _receiver(workers, side, port, args.qos, warm + count + 1_000_000, prefix)
        receiver.expect("READY", _TIMEOUT_S)
        pid = str(receiver.process.pid)
        _publish(workers, port, args.qos, warm, rate)
        time.sleep(1.0)
        seconds = count / rate
        _control(control, "--zero", pid)
        _publish(workers, port, args.qos, count, rate)
        time.sleep(1.0)
        busy_s = seconds + 1.0  # the publisher's start-up is not counted (it had connected)
        busy = _dump(control, pid, out, "busy")
        _control(control, "--zero", pid)
        time.sleep(busy_s)
        idle = _dump(control, pid, out, "idle")
        receiver.stop()
        per = (busy - idle) / count
        figures[side] = per
        print(
            f"\n== {side}, QoS{args.qos}: {per:,.0f} instructions per lone message "
            f"({busy:,} counted over {count} messages, {idle:,} idle for as long) =="
        )
        _annotate(out, "busy", args.top)
    if len(figures) == 2:
        print(f"\ngw/raw instructions per message: {figures['gw'] / figures['raw']:.2f}")


def _control(control: str, option: str, pid: str) -> None:
    subprocess.run([control, option, pid], check=True, capture_output=True, timeout=120)


def _dump(control: str, pid: str, out: Path, label: str) -> int:
    """Dump the counters (as ``<out>.<n>``, which is renamed ``<out>.<label>``): their total."""
    before = set(out.parent.glob(out.name + ".*"))
    _control(control, f"--dump={label}", pid)
    deadline = time.monotonic() + 60
    while True:
        new = set(out.parent.glob(out.name + ".*")) - before
        if new:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"callgrind wrote no dump for {label}")
        time.sleep(0.2)
    path = new.pop()
    time.sleep(0.5)  # let it finish writing
    target = out.with_name(f"{out.name}.{label}")
    path.rename(target)
    for line in target.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no totals in {target}")


def _annotate(out: Path, label: str, top: int) -> None:
    annotate = shutil.which("callgrind_annotate")
    if annotate is None or top <= 0:
        return
    text = subprocess.run(
        [annotate, "--inclusive=no", "--threshold=100", str(out.with_name(f"{out.name}.{label}"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "file:function" in line), None)
    if start is None:
        return
    # The frames open at the zeroing (main and the like) show as 100 %: not own costs.
    rows = [line for line in lines[start + 2 :] if "(" in line and "100.0%" not in line]
    for line in rows[:top]:
        cost, _, where = line.strip().partition("  ")
        path, _, function = where.strip().rpartition(":")
        library = function.partition(" [")[2].rstrip("]")
        function = function.partition(" [")[0]
        place = Path(path).name if path != "???" else Path(library).name
        print(f"  {cost:>22}  {function} ({place})")


def strace(workers: Workers, work_dir: Path, port: int, args: argparse.Namespace) -> None:
    binary = shutil.which("strace")
    if binary is None:
        raise SystemExit("strace is not installed")
    count = args.count or 3
    for side in _sides(args):
        out = work_dir / f"strace-{side}.txt"
        receiver = _receiver(workers, side, port, args.qos, 20 + count, ())
        receiver.expect("READY", _TIMEOUT_S)
        _publish(workers, port, args.qos, 20, args.rate or 50)
        time.sleep(0.5)
        tracer = subprocess.Popen(
            [
                binary,
                "-f",
                "-tt",
                "-e",
                "trace=network,epoll_wait,epoll_pwait,select,pselect6,poll,write",
                "-o",
                str(out),
                "-p",
                str(receiver.process.pid),
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            _publish(workers, port, args.qos, count, args.rate or 5)
            time.sleep(0.5)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=10)
        receiver.result(_TIMEOUT_S)
        print(f"\n== {side}, QoS{args.qos}: {count} messages ({out}) ==")
        print(out.read_text(errors="replace").rstrip())


def _sides(args: argparse.Namespace) -> tuple[str, ...]:
    return _SIDES if args.side == "both" else (args.side,)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="gwproactor-latency-"))
    (work_dir / "broker").mkdir()
    (work_dir / "logs").mkdir()
    broker = Mosquitto(work_dir / "broker", name="profile-broker", log_types=("error", "warning"))
    tools = {"opcodes": opcodes, "callgrind": callgrind, "strace": strace}
    try:
        with broker, Workers(work_dir / "logs", work_dir / "state") as workers:
            tools[args.tool](workers, work_dir, broker.port, args)
    except (BenchError, MosquittoError) as e:
        print(f"profile_latency: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if not os.environ.get("PROFILE_KEEP"):
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"kept {work_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
