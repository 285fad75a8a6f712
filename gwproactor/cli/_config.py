"""``gwproactor config``: validate a config file and show each effective value's source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gwproactor.cli._preflight import preflight
from gwproactor.cli._run import EXIT_CONFIG, check_env_file
from gwproactor.config import load_settings_with_sources
from gwproactor.errors import ConfigError


def config_command(
    config: Path, env_file: Path | None, console: Console, *, as_json: bool = False
) -> int:
    """Validate as ``run`` would (including :func:`preflight`'s checks of files, ports and
    the store); print the effective settings and their sources (``as_json``: one JSON
    object, ``{"valid", "settings": [{"setting", "value", "from"}], "problems"}``, secrets
    masked). Exit 2 if ``run`` would refuse to start."""
    try:
        settings, sources = load_settings_with_sources(config, check_env_file(env_file))
    except ConfigError as e:
        if as_json:
            out = {"valid": False, "config": str(config), "settings": [], "problems": [str(e)]}
            console.out(json.dumps(out, indent=2), highlight=False)
            return EXIT_CONFIG
        console.print(f"[red]invalid[/red] {escape(str(config))}:\n{escape(str(e))}")
        return EXIT_CONFIG
    if as_json:
        return _config_json(config, settings, sources, console)
    table = Table(title=f"{settings.name}: effective settings", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    # JSON mode: a value as the config file would write it (qos 1, not <QOS.AtLeastOnce: 1>).
    for loc, value in _leaves(settings.model_dump(mode="json", by_alias=True), ()):
        shown = "********" if _is_secret(settings, loc) and value is not None else repr(value)
        table.add_row(".".join(str(p) for p in loc), shown, sources.origin(loc))
    console.print(table)
    problems = preflight(settings)
    if problems:
        console.print(f"[red]run would refuse to start[/red] {escape(str(config))}:")
        for problem in problems:
            console.print(f"  {escape(problem)}", soft_wrap=True)
        return EXIT_CONFIG
    console.print(f"[green]valid[/green]: {config}")
    return 0


def _leaves(value: Any, loc: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[tuple[str, ...], Any]] = []
        for key, inner in value.items():
            out.extend(_leaves(inner, (*loc, str(key))))
        return out
    return [(loc, value)]


def _is_secret(settings: Any, loc: tuple[str, ...]) -> bool:
    node = settings
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return False
    return isinstance(node, SecretStr)


def _config_json(config: Path, settings: Any, sources: Any, console: Console) -> int:
    rows = []
    for loc, value in _leaves(settings.model_dump(mode="json", by_alias=True), ()):
        shown = "********" if _is_secret(settings, loc) and value is not None else value
        rows.append(
            {"setting": ".".join(str(p) for p in loc), "value": shown, "from": sources.origin(loc)}
        )
    problems = preflight(settings)
    out = {"valid": not problems, "config": str(config), "settings": rows, "problems": problems}
    console.out(json.dumps(out, indent=2), highlight=False)
    return EXIT_CONFIG if problems else 0
