"""Where RabbitMQ and Erlang's ``epmd`` are installed, and which RabbitMQ version that is.

The lookups behind :func:`gwproactor.testing.rabbitmq.find_rabbitmq_server` and
:func:`~gwproactor.testing.rabbitmq.find_epmd`, which pass in the error to raise (so that
this module need not import theirs), and :func:`rabbitmq_version`, re-exported there as is.
Cheap: no Erlang VM is started here.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = (
    "INSTALL_HINT",
    "RABBITMQ_ENV",
    "locate_epmd",
    "locate_rabbitmq_server",
    "rabbitmq_version",
)

RABBITMQ_ENV = "GW_RABBITMQ_SERVER"
INSTALL_HINT = "apt-get install rabbitmq-server, or point $GW_RABBITMQ_SERVER at its start script"

# Debian's /usr/sbin/rabbitmq-server is a wrapper that re-runs the real script as user
# "rabbitmq" from /var/lib/rabbitmq (the system node's home): use the real script.
_REAL_SCRIPTS = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/local/lib/rabbitmq/bin/rabbitmq-server",
)
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/bin")
_WRAPPER_MARK = b"su rabbitmq"
_VERSION_RE = re.compile(r"rabbitmq_server-(\d+)\.(\d+)\.(\d+)")


def locate_rabbitmq_server(not_found: type[Exception]) -> Path:
    """Return the ``rabbitmq-server`` start script to run (not a wrapper that changes user).

    Looks at ``$GW_RABBITMQ_SERVER``, then the real script of the Debian package, then
    ``PATH`` and the usual sbin directories. Raises ``not_found`` with the reason.
    """
    override = os.environ.get(RABBITMQ_ENV)
    if override:
        if os.access(override, os.X_OK):
            return Path(override)
        raise not_found(f"${RABBITMQ_ENV}={override!r} is not an executable")
    for script in _REAL_SCRIPTS:
        if os.access(script, os.X_OK):
            return Path(script)
    found = shutil.which("rabbitmq-server") or shutil.which(
        "rabbitmq-server", path=os.pathsep.join(_SBIN_DIRS)
    )
    if found is None:
        raise not_found(f"rabbitmq-server is not installed ({INSTALL_HINT})")
    with Path(found).open("rb") as script_file:
        if _WRAPPER_MARK in script_file.read(8192):
            raise not_found(
                f"{found} only re-runs RabbitMQ as the system user; set ${RABBITMQ_ENV} to the "
                "real start script (sbin/rabbitmq-server of the rabbitmq_server-<version> tree)"
            )
    return Path(found)


def locate_epmd(not_found: type[Exception]) -> Path:
    """Return Erlang's ``epmd`` (on ``PATH``, else in an ``erts-*/bin`` of the Erlang root).

    Raises ``not_found`` if there is none.
    """
    found = shutil.which("epmd")
    if found is not None:
        return Path(found)
    for root in (Path("/usr/lib/erlang"), Path("/usr/local/lib/erlang")):
        for candidate in sorted(root.glob("erts-*/bin/epmd"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    raise not_found(f"Erlang's epmd was not found ({INSTALL_HINT})")


def rabbitmq_version(script: Path) -> tuple[int, int, int] | None:
    """The version in the installation path of ``script`` (``.../rabbitmq_server-3.10.8/...``
    after resolving links), or None. Cheap: no Erlang VM is started."""
    match = _VERSION_RE.search(str(script.resolve()))
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch
