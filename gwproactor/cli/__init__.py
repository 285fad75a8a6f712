"""The ``gwproactor`` command: run, demo, config, store, install-unit, status, events."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from gwproactor import __version__

__all__ = ("main",)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; each option's default shown unless its help already says it or
    there is none worth showing (None, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or action.nargs == 0  # a flag: its default is its absence
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)"


def _command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    kwargs.setdefault("formatter_class", _HelpFormatter)
    parser: argparse.ArgumentParser = commands.add_parser(name, **kwargs)
    return parser


_ACTION_ARGS: dict[str, dict[str, Any]] = {
    "link": {"help": "the link's name, as in the config's [links.NAME]"},
    "category": {
        "choices": ("general", "message_summary", "lifecycle", "comm_event"),
        "help": "the log category: %(choices)s",
    },
    "level": {
        "type": str.upper,
        "choices": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        "help": "the new level (any case): %(choices)s",
    },
    "actor": {"help": "the actor's name, as in the config's [actors.NAME]"},
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gwproactor",
        description="Run and inspect gwproactor field gateways.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gwproactor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = _command(
        commands,
        "run",
        help="run a gateway from a config file, env and .env",
        epilog=_EXIT_CODES,
    )
    run.add_argument("config", type=Path, help="TOML config file")
    run.add_argument(
        "--env-file", type=Path, default=None, help="must exist if given (default: ./.env if any)"
    )
    run.add_argument("--log-level", default=None, help="override logging.level")
    run.add_argument(
        "--log-format",
        choices=("auto", "rich", "plain", "journal", "json"),
        default=None,
        help="override logging.format (auto: rich on a terminal, journal under systemd)",
    )

    demo = _command(
        commands, "demo", help="a parent and a child gateway on a private broker, with a live view"
    )
    demo.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (default 0: until Ctrl-C)"
    )
    demo.add_argument(
        "--outage-at", type=float, default=8.0, help="kill the broker after this many s (<0: never)"
    )
    demo.add_argument(
        "--outage-seconds", type=float, default=4.0, help="how long the broker stays down"
    )
    demo.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="where parent.toml and child.toml are (default: ./config, else the examples)",
    )
    demo.add_argument("--no-live", action="store_true", help="print lines instead of a live view")

    config = _command(
        commands,
        "config",
        help="validate a config and show where values came from",
        epilog=_EXIT_CODES,
    )
    config.add_argument("config", type=Path, help="the gateway's TOML config file")
    config.add_argument("--json", action="store_true", help="settings and problems as JSON")
    config.add_argument(
        "--env-file", type=Path, default=None, help="must exist if given (default: ./.env if any)"
    )

    store = _command(
        commands,
        "store",
        help="inspect or repair a gateway's event store offline (by its config)",
        epilog=_STORE_EXIT_CODES,
    )
    store.add_argument(
        "config", type=Path, help="the gateway's TOML config file (it names the store)"
    )
    store.add_argument(
        "action",
        choices=("stats", "export", "dead-letters", "retry", "drop"),
        help="stats; export (JSON lines); dead-letters; retry ID / drop ID (a dead letter)",
    )
    store.add_argument("event_id", nargs="?", default=None, help="for retry and drop")
    store.add_argument(
        "--env-file", type=Path, default=None, help="must exist if given (default: ./.env if any)"
    )
    store.add_argument(
        "--which",
        choices=("all", "pending", "archived", "dead"),
        default="all",
        help="export only these",
    )
    store.add_argument("--json", action="store_true", help="stats / dead-letters as JSON")

    install = _command(
        commands,
        "install-unit",
        help="install the systemd unit, the gwproactor user, /etc/gwproactor and a config",
        epilog=_INSTALL_EXIT_CODES,
    )
    install.add_argument("--instance", default="child", help="config name (gwproactor@NAME)")
    install.add_argument("--user", default="gwproactor", help="the service user and group")
    install.add_argument(
        "--config", type=Path, default=None, help="the config to install (default: the example)"
    )
    install.add_argument("--root", type=Path, default=None, help="install under this directory")

    status = _command(
        commands,
        "status",
        help="show the status of a running gateway (exit 3 when not ready)",
        epilog=_EXIT_CODES,
    )
    status.add_argument("url", help="the gateway's web address, e.g. http://127.0.0.1:8080")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")

    _add_events(commands)
    _add_actions(commands)
    return parser


def _add_events(commands: Any) -> None:
    events = _command(commands, "events", help="query a running gateway's event store")
    events.add_argument("url", help="the gateway's web address, e.g. http://127.0.0.1:8080")
    events.add_argument("--pattern", default=None, help="type pattern: gw.?.state, gw.*")
    events.add_argument("--limit", type=int, default=None, help="at most this many (100)")
    events.add_argument("--start", type=_time_ns, default=None, help="from (ISO time or ns)")
    events.add_argument("--end", type=_time_ns, default=None, help="before (ISO time or ns)")
    which = events.add_mutually_exclusive_group()
    which.add_argument(
        "--pending",
        dest="pending",
        action="store_const",
        const=True,
        help="only events not yet acked upstream (default: both kinds)",
    )
    which.add_argument(
        "--archived",
        dest="pending",
        action="store_const",
        const=False,
        help="only archived events (acked upstream, or kept where there is no upstream)",
    )
    order = events.add_mutually_exclusive_group()
    order.add_argument(
        "--newest", dest="newest", action="store_true", default=True, help="the newest (default)"
    )
    order.add_argument("--oldest", dest="newest", action="store_false", help="the oldest")
    events.add_argument(
        "--follow", action="store_true", help="keep printing new events (JSON lines with --json)"
    )
    events.add_argument("--interval", type=float, default=2.0, help="--follow: seconds per poll")
    events.add_argument(
        "--follow-seconds", type=float, default=0.0, help="--follow: stop after this (0: never)"
    )
    events.add_argument("--json", action="store_true", help="print the raw JSON")
    events.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")


def _add_actions(commands: Any) -> None:
    for name, help_text, args in (
        ("reconnect", "drop and re-open one link's broker connection", ("link",)),
        ("log-level", "set a log category's level at run time", ("category", "level")),
        ("restart-actor", "stop, reload and start a configured actor", ("actor",)),
    ):
        action = _command(
            commands, name, help=f"{help_text} (needs the web token)", epilog=_EXIT_CODES
        )
        action.add_argument("url", help="the gateway's web address, e.g. http://127.0.0.1:8080")
        for arg in args:
            action.add_argument(arg, **_ACTION_ARGS[arg])
        action.add_argument(
            "--token",
            default=None,
            help="the gateway's web.token (default: $GWPROACTOR_WEB__TOKEN)",
        )
        action.add_argument("--json", action="store_true", help="print the raw JSON answer")
        action.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")


_EXIT_CODES = """exit codes:
  0  done (status: the gateway is ready)
  1  the gateway answered with an error (a refused query or action, a bad token)
  2  the gateway could not be reached; run/config: the configuration is unusable
  3  status: the gateway answered but is not ready (a link not active, or not running)"""

_STORE_EXIT_CODES = """exit codes:
  0  done
  1  a store error (no store file, a damaged one), or no such dead letter (retry, drop)
  2  the configuration is unusable"""

_INSTALL_EXIT_CODES = """exit codes:
  0  installed
  2  not root (without --root), no example config or unit, --config missing, or a
     gwproactor the unit could not run (under /home, /root or /run/user: ProtectHome=yes)"""

_PIPE_WIDTH = 100_000  # not a terminal: no line is cut or wrapped to fit a screen


def _console() -> Console:
    """Rich on a terminal; piped or redirected, plain text at full length (for scripts)."""
    console = Console(stderr=False, highlight=False)
    if console.is_terminal:
        return console
    return Console(stderr=False, highlight=False, width=_PIPE_WIDTH)


def _time_ns(text: str) -> int:
    from gwproactor.cli._events import parse_time_ns

    try:
        return parse_time_ns(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - a return per command

    parser = _parser()
    args = parser.parse_args(argv)

    console = _console()
    if args.command == "run":
        from gwproactor.cli._run import run_command

        return run_command(
            args.config, args.env_file, args.log_level, console, log_format=args.log_format
        )
    if args.command == "demo":
        from gwproactor.cli._demo import demo_command

        return demo_command(args, console)
    if args.command == "config":
        from gwproactor.cli._config import config_command

        return config_command(args.config, args.env_file, console, as_json=args.json)
    if args.command == "install-unit":
        from gwproactor.cli._install import install_unit_command

        return install_unit_command(args.instance, args.user, args.root, args.config, console)
    if args.command == "store":
        if args.action in ("retry", "drop") and not args.event_id:
            parser.error(f"store {args.action} needs an event id")
        from gwproactor.cli._store import store_command

        return store_command(
            args.config,
            args.env_file,
            args.action,
            args.event_id,
            which=args.which,
            as_json=args.json,
            console=console,
        )
    if args.command == "status":
        from gwproactor.cli._status import status_command

        return status_command(args.url, as_json=args.json, timeout=args.timeout, console=console)
    if args.command == "events":
        from gwproactor.cli._events import events_command

        return events_command(
            args.url,
            pattern=args.pattern,
            limit=args.limit,
            start_ns=args.start,
            end_ns=args.end,
            pending=args.pending,
            as_json=args.json,
            timeout=args.timeout,
            console=console,
            newest=args.newest,
            follow=args.follow,
            interval=args.interval,
            follow_seconds=args.follow_seconds,
        )
    if args.command in ("reconnect", "log-level", "restart-actor"):
        from gwproactor.cli._actions import action_command

        values = [getattr(args, a) for a in ("link", "category", "level", "actor") if a in args]
        return action_command(
            args.url,
            args.command,
            values,
            token=args.token,
            as_json=args.json,
            timeout=args.timeout,
            console=console,
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())
