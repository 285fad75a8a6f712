"""Run the MQTT tests against the lowest and the highest paho-mqtt release pyproject allows.

gwproactor relies on a few private parts of paho (gwproactor/mqtt/_paho.py names them), so
every paho release the version range admits must be tested, not only the one pip happened
to install. For each of the two releases (one run when they are the same) this installs
paho alone into a small cached directory, ``.venv/paho-matrix/<version>`` (``pip install
--no-deps --target``, once), and runs the MQTT unit tests and two short real-broker tests
(a reconnect, and a failover and failback over TLS) with that directory first on
``PYTHONPATH``: everything else (gwproactor itself, pytest,
pydantic...) comes from the project's venv, so each "venv" of the matrix is paho alone,
a few hundred kilobytes, and a cached run takes seconds.

Usage: ``.venv/bin/python scripts/paho_matrix.py [--versions 2.2.0 ...] [-- pytest args]``.
``scripts/test`` runs it (with no arguments) before the whole suite. The releases come
from ``pip index versions paho-mqtt``; if the index cannot be reached, the installed
release is tested alone and a warning says so.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".venv" / "paho-matrix"
TESTS = (
    "tests/unit/test_paho_door.py",
    "tests/unit/test_buffered_client.py",
    "tests/integration/test_pair.py::test_typed_messages_both_ways_routed_to_named_actors",
    "tests/integration/test_pair.py::test_broker_restart_both_reconnect_and_traffic_resumes",
    "tests/integration/test_tls.py::test_failover_and_failback_over_tls_without_hostname_check",
)


def paho_requirement() -> Requirement:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith("paho-mqtt")]
    return Requirement(spec)


def published_versions() -> list[Version] | None:
    """Every paho-mqtt release the package index lists, or None if it cannot be asked."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "paho-mqtt"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"^Available versions: (.+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        return None
    return [Version(v.strip()) for v in match.group(1).split(",")]


def installed_version() -> Version:
    import paho.mqtt

    return Version(paho.mqtt.__version__)


def matrix(requirement: Requirement) -> list[Version]:
    """The lowest and the highest allowed release (one if they are the same)."""
    published = published_versions()
    if published is None:
        print("paho matrix: warning: the package index cannot be reached; testing the installed")
        print(f"paho {installed_version()} only")
        return [installed_version()]
    allowed = sorted(v for v in published if requirement.specifier.contains(v))
    if not allowed:
        raise SystemExit(f"paho matrix: no published paho-mqtt matches {requirement}")
    return sorted({allowed[0], allowed[-1]})


def overlay(version: Version) -> Path:
    """A directory holding paho ``version`` alone (installed once, then reused)."""
    target = CACHE / str(version)
    stamp = target / ".complete"
    if not stamp.exists():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--upgrade",
                "--target",
                str(target),
                f"paho-mqtt=={version}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"paho matrix: installing paho-mqtt {version} failed:\n{done.stderr}")
        stamp.touch()
    return target


def run(version: Version, pytest_args: list[str]) -> bool:
    target = overlay(version)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    probe = subprocess.run(
        [sys.executable, "-c", "import paho.mqtt; print(paho.mqtt.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if Version(probe.stdout.strip()) != version:
        raise SystemExit(f"paho matrix: {target} gives paho {probe.stdout.strip()}")
    print(f"paho matrix: paho-mqtt {version}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *TESTS, *pytest_args],
        env=env,
        cwd=ROOT,
        check=False,
    )
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", type=Version, help="test these instead")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    requirement = paho_requirement()
    versions = args.versions or matrix(requirement)
    print(f"paho matrix: {requirement} -> {', '.join(map(str, versions))}", flush=True)
    failed = [v for v in versions if not run(v, args.pytest_args)]
    if failed:
        print(f"paho matrix: FAILED with paho-mqtt {', '.join(map(str, failed))}")
        return 1
    print(f"paho matrix: passed with paho-mqtt {', '.join(map(str, versions))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
