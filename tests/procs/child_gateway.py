"""A child gateway as a program: generates ``Counted(n)`` events and reports each commit.

Usage::

    python -m tests.procs.child_gateway --port P --state-dir D --start K --count N
        [--name child] [--parent parent] [--window 50] [--rate R] [--exit-when-drained]
        [--freeze-after-committed C] [--freeze-after-acked A]

It runs a proactor named ``--name`` with one upstream link to ``--parent`` on the broker at
127.0.0.1:P, keeping its store in ``D``. It generates ``Counted(K)`` .. ``Counted(K+N-1)``
in order (paced at ``--rate`` events per second if given), with at most ``--window``
``generate_event`` futures outstanding, and prints the
lines described in :mod:`tests.procs` (flushed one by one, so that a test reading them can
SIGKILL it at a chosen moment: every ``committed`` line it has read is a durable event).
It then keeps running (re-uploading whatever is pending) until SIGTERM or SIGINT, or, with
``--exit-when-drained``, until no event is pending once its upstream link has been active. It
exits 0 after a clean stop.

``--freeze-after-committed C`` makes it print ``frozen`` and SIGSTOP itself right after
printing its C-th ``committed`` line, ``--freeze-after-acked A`` on receiving its A-th ack
(before it clears that event from its store, so at least ``count - A + 1`` of a re-upload of
``count`` events are still pending; its ``acked`` lines lag behind, so may be fewer): a
test that SIGKILLs it on reading fewer lines than that (or ``frozen``) kills it at that point
at the latest, however far ahead of the test's reading a busy machine lets it run (it never
finishes its range, nor its re-upload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from pathlib import Path

from result import Err, Result

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings, StoreError
from gwproactor.config import PathSettings
from gwproactor.observe.listeners import CommEvent, EventListener
from tests.helpers import REGISTRY, Counted

TIMEOUT = 30.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Freeze:
    """Counts the ``committed`` lines printed and the acks received, and SIGSTOPs this
    process at the configured count (0: never)."""

    def __init__(self) -> None:
        self.after = {"committed": 0, "acked": 0}
        self.seen = {"committed": 0, "acked": 0}

    def count(self, kind: str) -> None:
        self.seen[kind] += 1
        if self.seen[kind] == self.after[kind]:
            say("frozen")
            os.kill(os.getpid(), signal.SIGSTOP)  # until SIGKILL (or SIGCONT)

    def acked(self, event: CommEvent) -> bool:
        """A listener's predicate, called as ``link.acked`` is emitted (before the acked
        event is cleared from the store); accepts nothing."""
        self.count("acked")
        return False


FREEZE = Freeze()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="child_gateway", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--name", default="child")
    parser.add_argument("--parent", default="parent")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (0: flat out)")
    parser.add_argument("--ack-timeout", type=float, default=5.0, help="the link's, in s")
    parser.add_argument("--upload-window", type=int, default=200, help="events in flight")
    parser.add_argument("--exit-when-drained", action="store_true")
    parser.add_argument("--freeze-after-committed", type=int, default=0)
    parser.add_argument("--freeze-after-acked", type=int, default=0)
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> Proactor:
    broker = BrokerSettings(port=args.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)
    settings = ProactorSettings(
        name=args.name,
        links={
            args.parent: LinkSettings(
                peer=args.parent,
                role="upstream",
                broker=broker,
                ack_timeout_seconds=args.ack_timeout,
            )
        },
        paths=PathSettings(state_dir=args.state_dir),
        event_upload_window=args.upload_window,
    )
    return Proactor(settings, REGISTRY)


def report(n: int, result: Result[str, StoreError]) -> None:
    if isinstance(result, Err):
        say(f"refused {n} {type(result.err_value).__name__}")
    else:
        say(f"committed {n} {result.ok_value}")
        FREEZE.count("committed")


async def generate(
    proactor: Proactor, start: int, count: int, window: int, rate: float = 0.0
) -> None:
    """Generate in order, at most ``window`` outstanding; commits resolve in FIFO order.
    With ``rate``, event i is generated no earlier than i / rate seconds after the first."""
    outstanding: deque[tuple[int, asyncio.Future[Result[str, StoreError]]]] = deque()
    loop = asyncio.get_running_loop()
    began = loop.time()
    for n in range(start, start + count):
        if rate > 0:
            delay = began + (n - start) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load, not synchronisation
        outstanding.append((n, proactor.generate_event(Counted(n=n))))
        if len(outstanding) >= window:
            first, future = outstanding.popleft()
            report(first, await future)
    while outstanding:
        first, future = outstanding.popleft()
        report(first, await future)
    say(f"generated {count}")


async def print_progress(listener: EventListener) -> None:
    async for event in listener:
        if event.name == "event.acked":
            say(f"acked {event.data['event_id']}")
        else:
            say(f"reupload {event.data['acked']} {event.data['pending']}")


async def drained(proactor: Proactor, link: str, listener: EventListener) -> None:
    """Return once ``link`` (the upstream one) has been active and the store holds no
    pending event (it is updated before ``event.acked``). Active first: with nothing
    pending, a child that did not wait for its parent would exit before a parent started
    for it is up, and a test that then stops that parent would SIGTERM it in the middle of
    its start-up, before it handles the signal (seen: exit status -15)."""
    with proactor.listener("link.state") as states:
        while not proactor.link(link).active:
            await states.get()
    while proactor.store.pending_count:
        await listener.get()
    say("drained")


async def work(proactor: Proactor, args: argparse.Namespace) -> None:
    with proactor.listener("event.acked") as acks:
        await generate(proactor, args.start, args.count, args.window, args.rate)
        if args.exit_when_drained:
            await drained(proactor, args.parent, acks)
        else:
            await asyncio.Event().wait()  # until SIGTERM


async def main(args: argparse.Namespace) -> int:
    FREEZE.after.update(committed=args.freeze_after_committed, acked=args.freeze_after_acked)
    proactor = build(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with (
        proactor.listener(("event.acked", "reupload.progress")) as progress,
        proactor.listener("link.acked", FREEZE.acked),
    ):
        printer = loop.create_task(print_progress(progress), name="child.progress")
        await proactor.start()
        say("ready")
        worker = loop.create_task(work(proactor, args), name="child.work")
        stopping = loop.create_task(stop.wait(), name="child.signal")
        try:
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (worker, stopping):
                task.cancel()
            await asyncio.wait_for(proactor.stop_and_join(), TIMEOUT)
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
    error = worker.exception() if worker.done() and not worker.cancelled() else None
    if error is not None:
        raise error
    say("stopped")
    return 0


if __name__ == "__main__":
    # CHILD_LOG_LEVEL=INFO shows the child's link and uploader in its log file.
    logging.basicConfig(level=os.environ.get("CHILD_LOG_LEVEL", "WARNING"))
    sys.exit(asyncio.run(main(parse_args())))
