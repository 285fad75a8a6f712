"""The ``gwproactor`` command: run, demo, config (and status, events with the daemon)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gwproactor", description="Run and inspect gwproactor field gateways."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a gateway from a config file, env and .env")
    run.add_argument("config", type=Path, help="TOML config file")
    run.add_argument("--env-file", type=Path, default=Path(".env"))
    run.add_argument("--log-level", default=None, help="override logging.level")

    demo = commands.add_parser(
        "demo", help="a parent and a child gateway on a private broker, with a live view"
    )
    demo.add_argument(
        "--duration", type=float, default=25.0, help="seconds to run (0: until Ctrl-C)"
    )
    demo.add_argument(
        "--outage-at", type=float, default=8.0, help="kill the broker after this many s (<0: never)"
    )
    demo.add_argument("--outage-seconds", type=float, default=4.0)
    demo.add_argument("--config-dir", type=Path, default=None)
    demo.add_argument("--no-live", action="store_true", help="print lines instead of a live view")

    config = commands.add_parser("config", help="validate a config and show where values came from")
    config.add_argument("config", type=Path)
    config.add_argument("--env-file", type=Path, default=Path(".env"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False, highlight=False)
    if args.command == "run":
        from gwproactor.cli._run import run_command

        return run_command(args.config, args.env_file, args.log_level, console)
    if args.command == "demo":
        from gwproactor.cli._demo import demo_command

        return demo_command(args, console)
    if args.command == "config":
        from gwproactor.cli._config import config_command

        return config_command(args.config, args.env_file, console)
    return 2


if __name__ == "__main__":
    sys.exit(main())
