"""``gwproactor install-unit`` (under ``--root``): directories, owners and modes, a config the
service can read, secrets only systemd reads; the unit passes ``systemd-analyze verify`` and
rates "OK" (≤ 4.9) in ``systemd-analyze security --offline=yes``, and sets LimitNOFILE.

``scripts/_bootstrap.sh`` installs Debian's ``systemd`` package when systemd-analyze is
missing; without it (another distribution) the two analyses are skipped, the rest runs.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from gwproactor.cli import main
from gwproactor.cli._install import PLACEHOLDER, hidden_path, install_unit_command
from gwproactor.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 4.9


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    out = io.StringIO()
    rc = install_unit_command("child", "gwproactor", tmp_path / "root", None, Console(file=out))
    assert rc == 0, out.getvalue()
    return tmp_path / "root"


def test_files_owners_and_modes(installed: Path) -> None:
    etc = installed / "etc" / "gwproactor"
    assert _mode(etc) == 0o750
    assert _mode(etc / "child.toml") == 0o640  # group gwproactor reads it
    assert _mode(etc / "child.env") == 0o600  # root only: systemd reads it
    unit = installed / "etc" / "systemd" / "system" / "gwproactor@.service"
    assert _mode(unit) == 0o644
    text = unit.read_text()
    assert PLACEHOLDER not in text
    (exec_start,) = re.findall(r"^ExecStart=(\S+) run /etc/gwproactor/%i.toml$", text, re.M)
    assert Path(exec_start).is_file()
    assert "EnvironmentFile=-/etc/gwproactor/%i.env" in text
    assert re.search(r"^LimitNOFILE=\d+$", text, re.M)
    assert re.search(r"^RestartPreventExitStatus=2$", text, re.M)
    # The example config is valid as installed.
    settings = load_settings(etc / "child.toml", env_file=None, environ={})
    assert settings.name == "child"


def test_an_existing_config_is_kept(installed: Path) -> None:
    config = installed / "etc" / "gwproactor" / "child.toml"
    config.write_text('name = "mine"\n')
    out = io.StringIO()
    assert install_unit_command("child", "gwproactor", installed, None, Console(file=out)) == 0
    assert config.read_text() == 'name = "mine"\n'
    assert "kept" in out.getvalue()


def test_without_root_it_needs_root_or_a_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["install-unit"]) == 2
    assert "run it as root" in capsys.readouterr().err


def _script(tmp_path: Path, interpreter: str) -> Path:
    script = tmp_path / "bin" / "gwproactor"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!{interpreter}\nimport sys\n")
    return script


def test_hidden_paths_include_the_interpreter(tmp_path: Path) -> None:
    # ProtectHome=yes hides /home, /root and /run/user from the service: the script, its
    # #! interpreter and where that links to must all be elsewhere.
    assert hidden_path(Path("/home/pi/venv/bin/gwproactor")) == Path("/home/pi/venv/bin/gwproactor")
    assert hidden_path(_script(tmp_path / "a", "/usr/bin/python3")) is None
    pyenv = "/root/.pyenv/versions/3.11.7/bin/python3.11"
    assert hidden_path(_script(tmp_path / "b", pyenv)) == Path(pyenv)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to("/run/user/1000/python3")
    assert hidden_path(_script(tmp_path / "c", str(venv / "python"))) == Path(
        "/run/user/1000/python3"
    )
    assert hidden_path(_script(tmp_path / "d", "/rooted/python")) is None


def test_an_executable_under_a_home_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, "/home/pi/.pyenv/shims/python3")
    monkeypatch.setattr("gwproactor.cli._install._executable", lambda: script)
    monkeypatch.setattr("os.geteuid", lambda: 0)

    def no_user(_user: str) -> list[str]:
        raise AssertionError("refused before anything is installed")

    monkeypatch.setattr("gwproactor.cli._install._ensure_user", no_user)
    assert main(["install-unit"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert "/home/pi/.pyenv/shims/python3 is under /home" in err
    assert "ProtectHome=yes" in err
    assert "203/EXEC" in err
    # Under --root (an image being built) it warns the same way and installs.
    assert main(["install-unit", "--root", str(tmp_path / "root")]) == 0
    assert "warning: /home/pi/.pyenv/shims/python3 is under /home" in capsys.readouterr().err


def _instance(installed: Path, tmp_path: Path) -> Path:
    # systemd-analyze wants a unit it could load: the template as one instance.
    unit = tmp_path / "gwproactor@child.service"
    unit.write_text((installed / "etc/systemd/system/gwproactor@.service").read_text())
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(installed: Path, tmp_path: Path) -> None:
    unit = _instance(installed, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(unit.name) not in done.stderr, done.stderr  # no warning about our unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_security_rates_it_ok(installed: Path, tmp_path: Path) -> None:
    unit = _instance(installed, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
