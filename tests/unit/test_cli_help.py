# argparse has no public way to list a parser's arguments.
# ruff: noqa: SLF001
"""The command line explains itself: every subcommand's arguments have help text, defaults
are shown, and the exit codes are in the help of the commands that have them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gwproactor.cli import _parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def test_every_subcommand_argument_has_help() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _subcommands().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("command", ["store", "run", "config", "install-unit", "status"])
def test_help_gives_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "exit codes:" in capsys.readouterr().out


def test_help_shows_defaults_and_valid_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "how long the broker stays down (default: 4.0)" in " ".join(
        capsys.readouterr().out.split()
    )
    with pytest.raises(SystemExit):
        main(["log-level", "--help"])
    out = capsys.readouterr().out
    assert "{general,message_summary,lifecycle,comm_event}" in out
    assert "{DEBUG,INFO,WARNING,ERROR,CRITICAL}" in out
    args = _parser().parse_args(["log-level", "http://x", "lifecycle", "debug"])
    assert args.level == "DEBUG"


def test_config_shows_qos_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "parent.toml"
    config.write_text(
        f'name = "parent"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        '[links.child]\npeer = "child"\nrole = "downstream"\n'
    )
    main(["config", str(config)])
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "links.child.qos" in line]
    assert "QOS" not in line and " 1 " in line, line
