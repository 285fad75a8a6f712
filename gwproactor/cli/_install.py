"""``gwproactor install-unit``: what a device needs to run a gateway under systemd.

As root it creates, each only if missing (an existing config or env file is never touched):

- the system user and group ``gwproactor`` (no login, home ``/var/lib/gwproactor``);
- ``/etc/gwproactor`` (0750 root:gwproactor): the service reads it, cannot write it;
- ``/etc/gwproactor/<instance>.toml`` (0640 root:gwproactor) from the example config;
- ``/etc/gwproactor/<instance>.env`` (0600 root:root): secrets as ``GWPROACTOR_*``
  variables, read by systemd itself (``EnvironmentFile=``), never by the service user;

and writes ``/etc/systemd/system/gwproactor@.service`` (0644) with ``ExecStart=`` pointing at
the ``gwproactor`` it was run from. The state directory is systemd's (``StateDirectory=``).
``--root DIR`` installs under DIR instead (an image being built, a test): no user is created
there and files are given to the user only if it exists on this machine.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from gwproactor.cli._examples import examples_dir
from gwproactor.cli._run import EXIT_CONFIG, fail
from gwproactor.errors import ConfigError

__all__ = ("hidden_path", "install_unit_command", "render_unit")

UNIT_NAME = "gwproactor@.service"
PLACEHOLDER = "/opt/gwproactor/venv/bin/gwproactor"
ENV_HEADER = """\
# Secrets for gwproactor@{instance}: GWPROACTOR_* variables, one per line, e.g.
# GWPROACTOR_LINKS__PARENT__BROKER__PASSWORD=...
# GWPROACTOR_WEB__TOKEN=...
# Read by systemd (EnvironmentFile=) as root: keep this file 0600 root:root.
"""


def render_unit(template: str, executable: Path) -> str:
    """The unit with ``ExecStart=`` running ``executable``."""
    if PLACEHOLDER not in template:
        raise ConfigError(f"the unit template has no {PLACEHOLDER} to replace")
    return template.replace(PLACEHOLDER, str(executable))


HIDDEN_DIRS = ("/home", "/root", "/run/user")
"""What ``ProtectHome=yes`` makes inaccessible to the service."""


def hidden_path(executable: Path) -> Path | None:
    """The first path the service needs to exec ``executable`` that the unit hides
    (:data:`HIDDEN_DIRS`), or None: the script itself, its ``#!`` interpreter (a venv's
    python) and where each resolves through symlinks (a venv made from a pyenv python in
    /root links there)."""
    candidates = [executable, executable.resolve()]
    interpreter = _shebang(executable)
    if interpreter is not None:
        candidates += [interpreter, interpreter.resolve()]
    for path in candidates:
        if _home_of(path):
            return path
    return None


def _home_of(path: Path) -> str:
    text = str(path)
    return next((d for d in HIDDEN_DIRS if text == d or text.startswith(d + "/")), "")


def _shebang(script: Path) -> Path | None:
    try:
        with script.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].decode(errors="replace").split()
    return Path(parts[0]) if parts else None


def _executable() -> Path:
    beside = Path(sys.executable).parent / "gwproactor"
    if beside.is_file():
        return beside
    found = shutil.which("gwproactor")
    return Path(found).resolve() if found else Path(sys.argv[0]).resolve()


def install_unit_command(
    instance: str,
    user: str,
    root: Path | None,
    config: Path | None,
    console: Console,
) -> int:
    examples = examples_dir()
    if examples is None:
        fail("install-unit: the example config and unit are not installed with gwproactor")
        return EXIT_CONFIG
    source_config = config or examples / "child.toml"
    if not source_config.is_file():
        fail(f"install-unit: --config {source_config} does not exist")
        return EXIT_CONFIG
    if root is None and os.geteuid() != 0:
        fail("install-unit: run it as root (or with --root DIR to install under DIR)")
        return EXIT_CONFIG
    executable = _executable()
    hidden = hidden_path(executable)
    if hidden is not None:
        why = (
            f"{hidden} is under {_home_of(hidden)}, which the unit hides (ProtectHome=yes): "
            "the service would fail with 203/EXEC; install gwproactor in a venv outside any "
            "home directory, made from a python outside them too (/usr/bin/python3 -m venv "
            "/opt/gwproactor/venv), and run install-unit from it"
        )
        if root is None:
            fail(f"install-unit: {why}")
            return EXIT_CONFIG
        # An image built under --root may get its gwproactor elsewhere: say it, go on.
        fail(f"install-unit: warning: {why}")
    base = root or Path("/")
    steps: list[str] = []
    if root is None:
        steps.extend(_ensure_user(user))
    gid = _group(user)
    etc = base / "etc" / "gwproactor"
    etc.mkdir(parents=True, exist_ok=True)
    _own(etc, 0o750, 0, gid)
    steps.append(f"{etc}: 0750 root:{user}")
    target = etc / f"{instance}.toml"
    if target.exists():
        steps.append(f"{target}: kept (exists)")
    else:
        shutil.copyfile(source_config, target)
        steps.append(f"{target}: from {source_config}")
    _own(target, 0o640, 0, gid)
    env = etc / f"{instance}.env"
    if env.exists():
        steps.append(f"{env}: kept (exists)")
    else:
        env.write_text(ENV_HEADER.format(instance=instance))
        steps.append(f"{env}: created (secrets go here)")
    _own(env, 0o600, 0, 0)
    unit_dir = base / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit = unit_dir / UNIT_NAME
    unit.write_text(render_unit((examples / UNIT_NAME).read_text(), executable))
    _own(unit, 0o644, 0, 0)
    steps.append(f"{unit}: ExecStart={executable} run /etc/gwproactor/%i.toml")
    for step in steps:
        console.print(escape(step), soft_wrap=True)
    console.print(
        f"next: gwproactor config {escape(str(target))}  (check it), then\n"
        f"      systemctl daemon-reload && systemctl enable --now gwproactor@{instance}\n"
        f"      journalctl -u gwproactor@{instance} -f",
        soft_wrap=True,
    )
    return 0


def _ensure_user(user: str) -> list[str]:
    try:
        pwd.getpwnam(user)
    except KeyError:
        pass
    else:
        return [f"user {user}: exists"]
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(  # noqa: S603  (fixed argv; the user name comes from the operator)
        [
            useradd,
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/gwproactor",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        check=True,
    )
    return [f"user {user}: created (system user, no login)"]


def _group(user: str) -> int | None:
    try:
        return grp.getgrnam(user).gr_gid
    except KeyError:
        return None


def _own(path: Path, mode: int, uid: int | None, gid: int | None) -> None:
    path.chmod(mode)
    if os.geteuid() == 0 and uid is not None:
        os.chown(path, uid, gid if gid is not None else -1)
