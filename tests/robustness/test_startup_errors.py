"""Everything ``gwproactor run`` refuses at start is refused by ``gwproactor config`` too, and
``run`` says it in one line naming the cause and the file or setting, with exit status 2.

Like test_bad_config, the cases run ``python -m gwproactor`` as subprocesses, all at once
from one module fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import gwproactor
from gwproactor.cli import _run as run_module
from gwproactor.cli import main

ROOT = Path(__file__).resolve().parents[2]

LINK = """
name = "child"
[paths]
state_dir = "state"
[links.up]
peer = "parent"
role = "upstream"
broker.port = 1
"""

TLS = (
    LINK
    + """broker.tls.enabled = true
broker.tls.ca_certs = "ca.pem"
broker.tls.certfile = "missing.crt"
broker.tls.keyfile = "missing.key"
"""
)

RESERVED = """
name = "child"
[links.remote]
peer = "ops"
role = "admin"
broker.port = 1
[actors.admin]
class = "gwproactor_actors.thermometer:ThermometerActor"
"""

NEWER_STORE_VERSION = 99


def _newer_store(directory: Path) -> None:
    (directory / "state").mkdir()
    conn = sqlite3.connect(directory / "state" / "events.db")
    conn.execute(f"PRAGMA user_version = {NEWER_STORE_VERSION}")
    conn.commit()
    conn.close()


def _bad_ca(directory: Path) -> None:
    (directory / "ca.pem").write_text("not a certificate\n")


def _unreadable_env(directory: Path) -> None:
    # Root reads anything it owns; the case drops CAP_DAC_OVERRIDE, so a 0600 file owned by
    # another user is as unreadable to it as to the service user of the issue.
    path = directory / "secret.env"
    path.write_text("GWPROACTOR_WEB__TOKEN=x\n")
    path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)


def _unreadable_config(directory: Path) -> None:
    path = directory / "gw.toml"
    path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)


def _drop_dac() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is needed to make a file unreadable for root")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    config: str = LINK
    prepare: Callable[[Path], None] | None = None
    prefix: Callable[[], tuple[str, ...]] = tuple


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    directory: Path
    flat: str = field(init=False)

    def __post_init__(self) -> None:
        self.flat = re.sub(r"\s+", " ", self.stdout + self.stderr)


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _cases(port: int) -> dict[str, Case]:
    web = LINK + f"[web]\nenabled = true\nport = {port}\n"
    cases = {
        "tls": Case((), TLS, _bad_ca),
        "reserved": Case((), RESERVED),
        "web-port": Case((), web),
        "newer-store": Case((), LINK, _newer_store),
        "env-missing": Case(("--env-file", "secret.env")),
        "env-unreadable": Case(("--env-file", "secret.env"), LINK, _unreadable_env, _drop_dac),
        "config-unreadable": Case((), LINK, _unreadable_config, _drop_dac),
    }
    out: dict[str, Case] = {}
    for name, case in cases.items():
        for command in ("run", "config"):
            out[f"{command}-{name}"] = Case(
                (command, "gw.toml", *case.args), case.config, case.prepare, case.prefix
            )
    return out


def _run(base: Path, name: str, case: Case) -> Ran:
    directory = base / name
    directory.mkdir()
    (directory / "gw.toml").write_text(case.config)
    if case.prepare is not None:
        case.prepare(directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWPROACTOR_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="200")
    for variable in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "STATE_DIRECTORY", "JOURNAL_STREAM"):
        env.pop(variable, None)
    try:
        done = subprocess.run(
            [*case.prefix(), sys.executable, "-m", "gwproactor", *case.args],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        return Ran(-1, f"timed out: {e.stdout!r}", f"{e.stderr!r}", directory)
    return Ran(done.returncode, done.stdout, done.stderr, directory)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, busy_port: int) -> dict[str, Ran]:
    base = tmp_path_factory.mktemp("startup")
    cases = _cases(busy_port)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, base, name, case) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


EXPECTED = {
    "tls": [
        "links.up.broker.tls.ca_certs",
        "ca.pem holds no usable certificate",
        "links.up.broker.tls.certfile: missing.crt does not exist",
        "links.up.broker.tls.keyfile: missing.key does not exist",
    ],
    "reserved": ["['admin'] are reserved"],
    "web-port": ["web.port: 127.0.0.1:{port} is already in use"],
    "newer-store": [f"schema {NEWER_STORE_VERSION}", "written by a newer gwproactor"],
    "env-missing": ["--env-file secret.env does not exist"],
    "env-unreadable": ["--env-file secret.env is not readable"],
    "config-unreadable": ["config file gw.toml cannot be read", "Permission denied"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_run_refuses_in_one_line_with_exit_2(
    cli: dict[str, Ran], busy_port: int, name: str
) -> None:
    ran = cli[f"run-{name}"]
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    assert ran.stdout == ""
    assert ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith("gwproactor: "), ran.stderr
    assert "Traceback" not in ran.stderr
    for text in EXPECTED[name]:
        assert text.format(port=busy_port) in ran.stderr, ran.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_refuses_what_run_refuses(cli: dict[str, Ran], busy_port: int, name: str) -> None:
    ran = cli[f"config-{name}"]
    assert ran.returncode == 2, ran.flat
    assert "Traceback" not in ran.flat
    for text in EXPECTED[name]:
        assert text.format(port=busy_port) in ran.flat, ran.flat


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"gwproactor {gwproactor.__version__}\n"


def test_run_itself_turns_a_start_failure_into_one_line(
    tmp_path: Path,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the pre-flight checks (a port taken between the check and the bind, a store
    replaced meanwhile), the start itself fails the same way: one line, exit 2."""
    monkeypatch.setattr(run_module, "preflight", lambda settings: [])
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    for name, config in (
        ("web", LINK + f"[web]\nenabled = true\nport = {busy_port}\n"),
        ("store", LINK),
    ):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "gw.toml").write_text(config.replace('"state"', f'"{directory / "state"}"'))
        if name == "store":
            _newer_store(directory)
        monkeypatch.chdir(directory)
        assert main(["run", "gw.toml", "--log-format", "plain"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("gwproactor: cannot start child (gw.toml): "), err
        assert ("already in use" if name == "web" else "schema version 99") in err
