"""The wheel carries what it needs: built from the checkout, installed into a venv of its own
(outside the repository), ``gwproactor --version`` and ``gwproactor demo`` work from an empty
directory.

The venv with the wheel's dependencies is cached under ``.venv/wheel-test/<hash of the
wheel's requirements>`` (created once, under a lock); each run re-installs the freshly built
wheel into it with ``--no-deps --force-reinstall``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gwproactor

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv" / "wheel-test"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("GW")
    }
    env.update(extra)
    return env


def _source(into: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) copied: pip builds in the source
    tree, and a stale build/ there would put deleted modules into the wheel."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def _build(dist: Path) -> Path:
    source = _source(dist.parent / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
        env=_env(),
        capture_output=True,
    )
    (wheel,) = dist.glob("gwproactor-*.whl")
    return wheel


def _venv_with(wheel: Path, requirements: str) -> Path:
    key = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    venv = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        if not (venv / ".ready").exists():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
            subprocess.run([*pip, str(wheel)], check=True, timeout=600, env=_env())
            (venv / ".ready").touch()
        else:
            subprocess.run(
                [*pip, "--no-deps", "--force-reinstall", str(wheel)],
                check=True,
                timeout=300,
                env=_env(),
            )
    return venv


def test_the_wheel_installs_and_runs_the_demo_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = _build(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rpartition("/")[0]
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
        metadata = archive.read(f"{info}/METADATA").decode()
    # No bare "actors" to clash with a user's package: the repository's actors/ folder
    # ships as gwproactor_actors.
    assert sorted(top_level) == ["gwproactor", "gwproactor_actors"]
    assert not [n for n in names if n.startswith("actors/")]
    for shipped in (
        "gwproactor_actors/relay.py",
        "gwproactor_actors/py.typed",
        "gwproactor/examples/parent.toml",
        "gwproactor/examples/child.toml",
        "gwproactor/examples/gwproactor@.service",
        "gwproactor/py.typed",
    ):
        assert shipped in names, shipped
    # Every file of config/ (example configs, the unit, monitoring rules and dashboard).
    config = ROOT / "config"
    for path in sorted(config.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            shipped = f"gwproactor/examples/{path.relative_to(config).as_posix()}"
            assert shipped in names, shipped
    assert {f"{info}/LICENSE", f"{info}/licenses/LICENSE"} & names  # by setuptools version
    requirements = "\n".join(
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    )
    venv = _venv_with(wheel, requirements)
    command = venv / "bin" / "gwproactor"
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _env(TMPDIR=str(tmp_path), COLUMNS="200")
    version = subprocess.run(
        [str(command), "--version"], cwd=empty, env=env, capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"gwproactor {gwproactor.__version__}"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import gwproactor; print(gwproactor.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel, not the checkout
    demo = subprocess.run(
        [
            str(command),
            "demo",
            "--no-live",
            "--duration",
            "5",
            "--outage-at",
            "2",
            "--outage-seconds",
            "1",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "nothing lost" in output, output
    assert list(empty.iterdir()) == []
