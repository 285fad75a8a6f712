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
from gwproactor.cli._install import PLACEHOLDER, install_unit_command
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
