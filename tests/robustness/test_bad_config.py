"""Bad configuration: every mistake is a ConfigError that names the field and the source, and
the command line turns it into exit status 2 with that message, never a traceback.

The command-line cases run ``python -m gwproactor`` as subprocesses, all at once from one
module fixture (each interpreter start costs about a second).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gwproactor.config import load_settings
from gwproactor.errors import ConfigError

LINK = """
name = "child"

[links.up]
peer = "parent"
role = "upstream"
broker.host = "127.0.0.1"
broker.port = 1883
"""

WRONG_TYPES = """
name = "child"
receive_queue_max = "lots"
stop_timeout_seconds = [1, 2]

[links.up]
peer = "parent"
role = "sideways"
broker.port = 70000
"""

MALFORMED = 'name = "child"\n\n[links.up\npeer = "parent"\n'

UNKNOWN_ACTOR = """
name = "child"

[actors.relay1]
class = "actors.no_such_module:NoSuchActor"
"""

BAD_LOG_LEVEL = 'name = "child"\n\n[logging]\nlevel = "LOUD"\n'


def _load(path: Path | None, environ: Mapping[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=None, environ=dict(environ or {}))
    return info.value


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the loader -----------------------------------------------------------------------------


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", MALFORMED)
    message = str(_load(path))
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 3" in message


def test_wrong_types_name_every_field_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "types.toml", WRONG_TYPES)
    lines = str(_load(path)).splitlines()
    assert lines[0] == "4 invalid setting(s):"
    for field_name, got in (
        ("receive_queue_max", "'lots'"),
        ("stop_timeout_seconds", "[1, 2]"),
        ("links.up.role", "'sideways'"),
        ("links.up.broker.port", "70000"),
    ):
        line = next(x for x in lines if x.strip().startswith(field_name + ":"))
        assert f"(got {got})" in line
        assert line.endswith(f"[from config file {path}]")


@pytest.mark.parametrize(
    ("text", "field_name"),
    [
        ('name = "c"\nrecieve_queue_max = 5\n', "recieve_queue_max"),
        ('name = "c"\n[links.up]\npeer = "p"\nbroker.hots = "x"\n', "links.up.broker.hots"),
        ('name = "c"\n[watchdog]\ncheck_interval = 1\n', "watchdog.check_interval"),
        ('name = "c"\n[actors.a]\nclass = "m:C"\nhandle = ["x"]\n', "actors.a.handle"),
    ],
)
def test_unknown_keys_are_errors_that_name_the_path(
    tmp_path: Path, text: str, field_name: str
) -> None:
    path = _write(tmp_path, "typo.toml", text)
    message = str(_load(path))
    assert f"{field_name}: Extra inputs are not permitted" in message
    assert f"[from config file {path}]" in message


@pytest.mark.parametrize(
    ("text", "field_name"),
    [
        ('name = "a/b"\n', "name"),
        ('name = "c"\n[links.up]\npeer = "p#"\n', "links.up.peer"),
        ('name = "c"\n[links."a b"]\npeer = "p"\n', "links.a b.[key]"),
        ('name = "c"\n[actors.a]\nclass = "m:C"\nhandles = ["x..y"]\n', "actors.a.handles.0"),
        ('name = ".c"\n', "name"),
    ],
)
def test_bad_names_are_refused_naming_the_field(tmp_path: Path, text: str, field_name: str) -> None:
    path = _write(tmp_path, "names.toml", text)
    message = str(_load(path))
    # A handles entry is a type name or a type pattern: its error says which rule it broke.
    said = re.escape(f"{field_name}: Value error, ")
    assert re.search(said + r"(route '[^']*': )?invalid (name|type pattern)", message), message


@pytest.mark.parametrize(
    "text",
    [
        'name = "c"\n[links."a b"]\npeer = "p"\n',
        'name = "c"\n[actors.a]\nclass = "m:C"\nhandles = ["x..y"]\n',
    ],
)
def test_bad_names_inside_lists_and_keys_name_the_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "names.toml", text)
    assert f"[from config file {path}]" in str(_load(path))


@pytest.mark.parametrize(
    ("variable", "value", "field_name"),
    [
        ("GWPROACTOR_LINKS__UP__BROKER__PORT", "abc", "links.up.broker.port"),
        ("GWPROACTOR_RECEIVE_QUEUE_MAX", "-1", "receive_queue_max"),
        ("GWPROACTOR_WATCHDOG__CHECK_INTERVAL_SECONDS", "fast", "watchdog.check_interval_seconds"),
        ("GWPROACTOR_LINKS__UP__ROLE", "sideways", "links.up.role"),
        ("GWPROACTOR_NAME", "has space", "name"),
        ("GWPROACTOR_LINKS__UP__ACK_TIMEOUT_SECONDS", "inf", "links.up.ack_timeout_seconds"),
        (
            "GWPROACTOR_LINKS__UP__BROKER__KEEPALIVE_SECONDS",
            "nan",
            "links.up.broker.keepalive_seconds",
        ),
        ("GWPROACTOR_STORE__MAX_BYTES", "inf", "store.max_bytes"),
        (
            "GWPROACTOR_WATCHDOG__CHECK_INTERVAL_SECONDS",
            "Infinity",
            "watchdog.check_interval_seconds",
        ),
    ],
)
def test_env_values_that_do_not_parse_name_field_and_variable(
    tmp_path: Path, variable: str, value: str, field_name: str
) -> None:
    path = _write(tmp_path, "child.toml", LINK)
    message = str(_load(path, {variable: value}))
    line = next(x for x in message.splitlines() if x.strip().startswith(field_name + ":"))
    assert f"(got {value!r})" in line
    assert line.endswith(f"[from environment: {variable}]")


def test_a_bad_dotenv_value_names_the_dotenv_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "child.toml", LINK)
    dotenv = _write(tmp_path, ".env", "GWPROACTOR_DISPATCH_BATCH=zero\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=dotenv, environ={})
    assert (
        f"dispatch_batch: Input should be a valid integer, unable to parse string as an integer "
        f"(got 'zero') [from .env file {dotenv}: GWPROACTOR_DISPATCH_BATCH]"
    ) in str(info.value)


def test_an_env_value_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    message = str(_load(None, {"GWPROACTOR_LINKS": "{not json"}))
    assert "links" in message


def test_an_env_value_that_is_not_json_names_the_variable() -> None:
    message = str(_load(None, {"GWPROACTOR_LINKS": "{not json"}))
    assert "GWPROACTOR_LINKS" in message
    assert "_EnvSource" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert str(_load(path)) == f"config file {path} does not exist"


def test_a_directory_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    message = str(_load(tmp_path))
    assert str(tmp_path) in message


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    assert str(path) in str(_load(path))


def test_an_actor_class_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "actor.toml", UNKNOWN_ACTOR)
    # Caught when the settings are loaded, before any gateway is built.
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=None, environ={})
    message = str(info.value)
    assert "relay1" in message
    assert "actors.no_such_module" in message


def test_an_actor_class_that_does_not_exist_names_field_and_source(tmp_path: Path) -> None:
    path = _write(tmp_path, "actor.toml", UNKNOWN_ACTOR)
    message = str(_load(path))
    assert "actors.relay1.class" in message
    assert f"config file {path}" in message


def test_an_unknown_log_level_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "level.toml", BAD_LOG_LEVEL)
    message = str(_load(path))
    assert "logging.level" in message
    assert f"[from config file {path}]" in message


# -- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class CliCase:
    """One ``python -m gwproactor`` run: its arguments, files to write and environment."""

    args: tuple[str, ...]
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CliRun:
    returncode: int
    output: str  # stdout and stderr together
    directory: Path

    @property
    def flat(self) -> str:
        """The output with line wrapping and indentation undone."""
        return re.sub(r"\s+", " ", self.output)


CASES: dict[str, CliCase] = {
    "config-types": CliCase(("config", "bad.toml"), {"bad.toml": WRONG_TYPES}),
    "config-env-port": CliCase(
        ("config", "child.toml"),
        {"child.toml": LINK},
        {"GWPROACTOR_LINKS__UP__BROKER__PORT": "abc"},
    ),
    "config-actor": CliCase(("config", "actor.toml"), {"actor.toml": UNKNOWN_ACTOR}),
    "config-binary": CliCase(("config", "bin.toml"), {"bin.toml": b'name = "\xff"\n'}),
    "run-malformed": CliCase(("run", "bad.toml"), {"bad.toml": MALFORMED}),
    "run-missing": CliCase(("run", "missing.toml")),
    "run-env": CliCase(
        ("run", "child.toml"), {"child.toml": LINK}, {"GWPROACTOR_RECEIVE_QUEUE_MAX": "-1"}
    ),
    "run-dotenv": CliCase(
        ("run", "child.toml"),
        {"child.toml": LINK, ".env": "GWPROACTOR_LINKS__UP__BROKER__PORT=abc\n"},
    ),
    "run-actor": CliCase(("run", "actor.toml"), {"actor.toml": UNKNOWN_ACTOR}),
    "run-log-level": CliCase(("run", "level.toml"), {"level.toml": BAD_LOG_LEVEL}),
    "run-binary": CliCase(("run", "bin.toml"), {"bin.toml": b'name = "\xff"\n'}),
    "run-state-dir-is-a-file": CliCase(
        ("run", "child.toml"),
        {"child.toml": 'name = "child"\n[paths]\nstate_dir = "child.toml"\n'},
    ),
}


def _run_case(base: Path, name: str, case: CliCase) -> CliRun:
    directory = base / name
    directory.mkdir()
    for file_name, content in case.files.items():
        if isinstance(content, bytes):
            (directory / file_name).write_bytes(content)
        else:
            (directory / file_name).write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWPROACTOR_")}
    env.update(
        XDG_STATE_HOME=str(directory / "state"),
        XDG_CONFIG_HOME=str(directory / "config"),
        COLUMNS="200",
        **case.env,
    )
    for variable in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "STATE_DIRECTORY"):
        env.pop(variable, None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gwproactor", *case.args],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        # A bad config that is accepted would run the gateway: a failure, not a hang.
        return CliRun(-1, f"timed out: {e.stdout!r} {e.stderr!r}", directory)
    return CliRun(done.returncode, done.stdout + done.stderr, directory)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CliRun]]:
    base = tmp_path_factory.mktemp("cli")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run_case, base, name, case) for name, case in CASES.items()}
        yield {name: future.result() for name, future in futures.items()}


def _no_traceback(run: CliRun) -> None:
    assert "Traceback" not in run.output, run.output
    assert "Error:" not in run.output.replace("ConfigError", ""), run.output


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "config-types",
            [
                "4 invalid setting(s):",
                "receive_queue_max: Input should be a valid integer",
                "stop_timeout_seconds: Input should be a valid number",
                "links.up.role: Input should be",
                "links.up.broker.port: Input should be less than or equal to 65535",
            ],
        ),
        ("config-env-port", ["links.up.broker.port: Input should be a valid integer", "'abc'"]),
    ],
)
def test_config_command_exits_2_with_the_message(
    cli: dict[str, CliRun], case: str, expected: list[str]
) -> None:
    run = cli[case]
    assert run.returncode == 2, run.output
    assert run.flat.startswith(f"invalid {CASES[case].args[1]}:"), run.output
    for text in expected:
        assert text in run.flat, run.output
    _no_traceback(run)


@pytest.mark.parametrize(
    ("case", "source"),
    [
        ("config-types", "[from config file bad.toml]"),
        ("config-env-port", "[from environment: GWPROACTOR_LINKS__UP__BROKER__PORT]"),
        ("run-dotenv", "[from .env file .env: GWPROACTOR_LINKS__UP__BROKER__PORT]"),
    ],
)
def test_cli_output_names_the_source(cli: dict[str, CliRun], case: str, source: str) -> None:
    assert source in cli[case].flat, cli[case].output


def test_config_command_refuses_an_actor_class_that_does_not_exist(
    cli: dict[str, CliRun],
) -> None:
    run = cli["config-actor"]
    assert run.returncode == 2, run.output
    assert "actors.no_such_module" in run.flat


def test_config_command_refuses_a_file_that_is_not_utf8(cli: dict[str, CliRun]) -> None:
    run = cli["config-binary"]
    assert run.returncode == 2, run.output
    _no_traceback(run)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("run-malformed", "bad.toml is not valid TOML"),
        ("run-missing", "config file missing.toml does not exist"),
        ("run-env", "receive_queue_max: Input should be greater than or equal to 2"),
        ("run-dotenv", "links.up.broker.port: Input should be a valid integer"),
        ("run-actor", "actors.relay1.class: 'actors.no_such_module:NoSuchActor' cannot import"),
        ("run-log-level", "logging.level"),
        ("run-binary", "bin.toml"),
        ("run-state-dir-is-a-file", "paths.state_dir"),
    ],
)
def test_run_command_exits_2_without_a_traceback(
    cli: dict[str, CliRun], case: str, expected: str
) -> None:
    run = cli[case]
    assert run.returncode == 2, run.output
    # One line on stderr naming the config file (what the journal shows under systemd).
    assert run.output.count("\n") == 1, run.output
    assert run.flat.startswith("gwproactor: "), run.output
    assert f"{CASES[case].args[1]}" in run.flat, run.output
    assert expected in run.flat, run.output
    _no_traceback(run)
