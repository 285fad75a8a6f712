"""``gwproactor demo``: a parent and a child gateway on a private broker, live.

The child has a simulated relay and thermometer (blocking drivers in worker threads) whose
readings and state changes are events; the parent commands the relay and stores the
events. Part way through, the broker is killed and restarted: the view shows both links
dropping and recovering, events piling up in the child's store and being re-uploaded.
At the end the demo checks that the parent holds every event the child generated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gwproactor.cli._examples import examples_dir
from gwproactor.cli._status import STATE_STYLE
from gwproactor.config import load_settings
from gwproactor.errors import ConfigError
from gwproactor.observe.listeners import CommEvent
from gwproactor.observe.logging_setup import setup_logging
from gwproactor.runtime.proactor import Proactor
from gwproactor.testing import Mosquitto, MosquittoError
from gwproactor.wire.registry import default_registry


def demo_command(args: argparse.Namespace, console: Console) -> int:
    config_dir = args.config_dir or _find_config_dir()
    if config_dir is None:
        console.print("[red]cannot find the demo's parent.toml (give --config-dir)[/red]")
        return 2
    demo = Demo(
        config_dir,
        console,
        duration=args.duration,
        outage_at=args.outage_at,
        outage_seconds=args.outage_seconds,
        live=not args.no_live and console.is_terminal,
    )
    try:
        return asyncio.run(demo.run())
    except (ConfigError, MosquittoError) as e:
        console.print(f"[red]demo failed to start:[/red] {e}")
        return 2


def _find_config_dir() -> Path | None:
    local = Path.cwd() / "config"
    if (local / "parent.toml").is_file():
        return local
    return examples_dir()


class Demo:
    def __init__(
        self,
        config_dir: Path,
        console: Console,
        *,
        duration: float,
        outage_at: float,
        outage_seconds: float,
        live: bool,
    ) -> None:
        self.config_dir = config_dir
        self.console = console
        self.duration = duration
        self.outage_at = outage_at
        self.outage_seconds = outage_seconds
        self.live = live
        self.log: deque[str] = deque(maxlen=200)  # the view shows as many as fit
        self.started = time.monotonic()
        self.rates: dict[str, tuple[float, int, float]] = {}
        self.pages: list[str] = []

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with tempfile.TemporaryDirectory(prefix="gwproactor-demo-") as tmp:
            work = Path(tmp)
            broker = Mosquitto(work / "broker", name="demo-broker")
            await broker.astart()
            self.note(f"private mosquitto on 127.0.0.1:{broker.port} (pid {broker.pid})")
            parent, child = self._gateways(work, broker.port)
            handlers = setup_logging(parent.settings.logging, work, file_name="demo.log")
            self.note(f"logs: {work / 'demo.log'} (removed at the end)")
            try:
                return await self._run_gateways(parent, child, broker, stop)
            finally:
                for handler in handlers:
                    parent.logger.general.removeHandler(handler)
                    handler.close()
                await broker.astop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    def _gateways(self, work: Path, port: int) -> tuple[Proactor, Proactor]:
        def load(name: str, link: str) -> Proactor:
            settings = load_settings(
                self.config_dir / f"{name}.toml",
                env_file=None,
                environ={},
                links={link: {"broker": {"port": port, "reconnect_max_seconds": 1.0}}},
                paths={"state_dir": str(work / name)},
                logging={"file_enabled": True},
                # Each gateway's status page on a free loopback port (shown in the view).
                web={"enabled": True, "host": "127.0.0.1", "port": 0},
            )
            return Proactor(settings, default_registry())

        return load("parent", "child"), load("child", "parent")

    async def _run_gateways(
        self, parent: Proactor, child: Proactor, broker: Mosquitto, stop: asyncio.Event
    ) -> int:
        with (
            parent.listener(("link.state",)) as p_events,
            child.listener(("link.state",)) as c_events,
        ):
            await parent.start()
            await child.start()
            self.pages = [f"{p.name} {p.web.base_url()}/" for p in (parent, child)]
            self.note("status pages (open in a browser): " + ", ".join(self.pages))
            watcher = asyncio.gather(
                self._watch(p_events, parent.name), self._watch(c_events, child.name)
            )
            outage = asyncio.ensure_future(self._outage(broker))
            try:
                await self._show(parent, child, stop)
            finally:
                outage.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outage
                if not broker.running:
                    await broker.astart()
                await self._drain(child)
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                generated = child.stats.events_generated
                pending = _unacked(child)
                await child.stop_and_join()
                await parent.stop_and_join()
        return self._summary(parent, generated, pending)

    async def _watch(self, listener: Any, gateway: str) -> None:
        async for event in listener:
            self.on_comm_event(event, gateway)

    def on_comm_event(self, event: CommEvent, gateway: str) -> None:
        # A link is named after its peer: "parent: ..." alone would be the child's link.
        self.note(
            f"{gateway} \N{RIGHTWARDS ARROW} {event.source}: {event.data['old']} -> "
            f"{event.data['new']} ({event.data['cause']})"
        )

    async def _outage(self, broker: Mosquitto) -> None:
        if self.outage_at < 0:
            return
        await asyncio.sleep(self.outage_at)  # the demo's script, not a synchronisation
        await broker.akill()
        self.note(
            "[red]broker killed (kill -9): links drop, events wait in the child's store[/red]"
        )
        await asyncio.sleep(self.outage_seconds)
        await broker.astart()
        self.note("[green]broker restarted: links recover, backlog re-uploads in order[/green]")

    async def _show(self, parent: Proactor, child: Proactor, stop: asyncio.Event) -> None:
        deadline = None if self.duration <= 0 else self.started + self.duration
        if self.live:
            with Live(
                self.render(parent, child), console=self.console, refresh_per_second=4
            ) as live:
                while not await _wait(stop, deadline, 0.25):
                    live.update(self.render(parent, child))
        else:
            while not await _wait(stop, deadline, 2.0):
                self.console.print(self._line(parent, child))

    async def _drain(self, child: Proactor) -> None:
        """Give the re-upload a few seconds to finish before stopping (bounded)."""
        end = time.monotonic() + 10.0
        with child.listener("event.acked") as acks:
            while _unacked(child) and time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    await acks.get(1.0)

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:6.1f}s  {text}")
        if not self.live:
            self.console.print(self.log[-1])

    def _rate(self, key: str, count: int) -> float:
        now = time.monotonic()
        last_time, last_count, rate = self.rates.get(key, (now, count, 0.0))
        if now - last_time >= 1.0:
            rate = (count - last_count) / (now - last_time)
            self.rates[key] = (now, count, rate)
        elif key not in self.rates:
            self.rates[key] = (now, count, 0.0)
        return rate

    def render(self, parent: Proactor, child: Proactor) -> Group:
        """The live view: links, events, the newest notes that fit, the footer."""
        links = Table(title="links", expand=True)
        for column in (
            "gateway",
            "link",
            "peer",
            "state",
            "msgs in",
            "msgs out",
            "in/s",
            "reconnects",
        ):
            links.add_column(column)
        for proactor in (parent, child):
            for link in proactor.links.values():
                stats = link.stats
                received = sum(stats.messages_in.values())
                links.add_row(
                    proactor.name,
                    link.name,
                    link.peer,
                    Text(link.state.value, style=STATE_STYLE.get(link.state.value, "")),
                    str(received),
                    str(sum(stats.messages_out.values())),
                    f"{self._rate(proactor.name + link.name, received):.0f}",
                    str(stats.reconnects),
                )
        events = Table(title="events", expand=True)
        for column in ("gateway", "generated", "pending upload", "received", "duplicates"):
            events.add_column(column)
        for proactor in (child, parent):
            events.add_row(
                proactor.name,
                str(proactor.stats.events_generated),
                str(_unacked(proactor)),
                str(proactor.stats.events_received),
                str(proactor.stats.events_duplicate),
            )
        elapsed = time.monotonic() - self.started
        pages = "  ·  ".join(self.pages)
        footer = Text(f"{elapsed:5.1f} s  (Ctrl-C stops cleanly)  {pages}", style="dim")
        log = Panel(self._newest_lines(links, events, footer), title="what happened", expand=True)
        return Group(links, events, log, footer)

    def _newest_lines(self, *others: Table | Text) -> Text:
        """As many of the newest notes as fit under the tables on this terminal (one line
        each, cut at the width), so the latest is always on screen, even on 80x24."""
        options = self.console.options
        used = sum(len(self.console.render_lines(o, options, pad=False)) for o in others)
        room = max(1, options.size.height - used - 2)  # the panel's top and bottom border
        lines = list(self.log)[-room:] or ["starting"]
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(lines):
            text.append_text(Text.from_markup(line))
            if i < len(lines) - 1:
                text.append("\n")
        return text

    def _line(self, parent: Proactor, child: Proactor) -> str:
        states = " ".join(
            f"{p.name}.{n}={link.state.value}"
            for p in (parent, child)
            for n, link in p.links.items()
        )
        return (
            f"{time.monotonic() - self.started:6.1f}s  {states}  child generated "
            f"{child.stats.events_generated}, pending {_unacked(child)}; parent received "
            f"{parent.stats.events_received}"
        )

    def _summary(self, parent: Proactor, generated: int, pending: int) -> int:
        received = parent.stats.events_received
        ok = pending == 0 and received >= generated
        style = "green" if ok else "red"
        self.console.print(
            f"[{style}]child generated {generated} events; parent stored {received}; "
            f"left pending in the child: {pending}[/{style}]"
        )
        if ok:
            self.console.print("[green]nothing lost across the broker outage.[/green]")
        return 0 if ok else 1


def _unacked(proactor: Proactor) -> int:
    """Events not acked upstream yet (the store may hold an acked one a moment longer)."""
    uploader = proactor.events.uploader
    return proactor.store.pending_count if uploader is None else uploader.unacked


async def _wait(stop: asyncio.Event, deadline: float | None, step: float) -> bool:
    """Wait up to ``step`` for ``stop``; True once stopped or past ``deadline``."""
    timeout = step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
    return stop.is_set() or (deadline is not None and time.monotonic() >= deadline)
