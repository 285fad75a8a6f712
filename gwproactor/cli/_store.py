"""``gwproactor store CONFIG COMMAND``: inspect and repair a gateway's event store offline.

``stats`` (counts, bytes, file sizes), ``export`` (JSON lines on stdout), ``dead-letters``
(events taken out of the upload after too many failed attempts), ``retry ID`` (put a dead
letter back in the upload queue) and ``drop ID`` (delete it). The store is found from the
config as ``run`` finds it. ``retry`` and ``drop`` are for a stopped gateway.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gwproactor.cli._run import EXIT_CONFIG, check_env_file
from gwproactor.config import load_settings
from gwproactor.errors import ConfigError, StoreError
from gwproactor.store._offline import (
    dead_letters,
    drop_dead_letter,
    export_rows,
    read_only,
    retry_dead_letter,
    store_stats,
)

__all__ = ("store_command",)


def store_command(
    config: Path,
    env_file: Path | None,
    command: str,
    event_id: str | None,
    *,
    which: str,
    as_json: bool,
    console: Console,
) -> int:
    """Run one store command; exit 0, 1 (store error, no such dead letter) or 2 (config)."""
    try:
        settings = load_settings(config, check_env_file(env_file))
    except ConfigError as e:
        console.print(f"[red]invalid[/red] {escape(str(config))}:\n{escape(str(e))}")
        return EXIT_CONFIG
    path = settings.paths.resolve(settings.name).store_file
    try:
        if command in ("retry", "drop"):
            assert event_id is not None
            return _repair(path, command, event_id, console)
        _read(path, command, which=which, as_json=as_json, console=console)
    except StoreError as e:
        console.print(f"[red]store error[/red]: {escape(str(e))}")
        return 1
    return 0


def _read(path: Path, command: str, *, which: str, as_json: bool, console: Console) -> None:
    with read_only(path) as conn:
        if command == "export":
            for row in export_rows(conn, which):
                sys.stdout.write(json.dumps(row, separators=(",", ":")) + "\n")
            return
        if command == "stats":
            stats = store_stats(conn, path)
            if as_json:
                sys.stdout.write(json.dumps(stats, indent=2) + "\n")
            else:
                _print_stats(stats, console)
            return
        letters = dead_letters(conn)
    if as_json:
        sys.stdout.write(json.dumps(letters, indent=2) + "\n")
    else:
        _print_letters(letters, console)


def _repair(path: Path, command: str, event_id: str, console: Console) -> int:
    if command == "retry":
        done, verb = retry_dead_letter(path, event_id), "back in the upload queue"
    else:
        done, verb = drop_dead_letter(path, event_id), "dropped"
    if not done:
        console.print(f"[red]no dead letter[/red] {escape(event_id)} in {escape(str(path))}")
        return 1
    console.print(f"{escape(event_id)}: {verb}")
    return 0


def _print_stats(stats: dict[str, object], console: Console) -> None:
    table = Table(title=f"event store {stats['path']}", show_header=False)
    for key, value in stats.items():
        if key != "path":
            table.add_row(key, escape(json.dumps(value)))
    console.print(table)


def _print_letters(letters: list[dict[str, object]], console: Console) -> None:
    if not letters:
        console.print("no dead letters")
        return
    columns = ("event_id", "type_name", "src", "attempts", "time_ns")
    table = Table(title=f"{len(letters)} dead letters")
    for column in columns:
        table.add_column(column)
    for letter in letters:
        table.add_row(*(escape(str(letter[c])) for c in columns))

    console.print(table)
