"""What ``gwproactor run`` would refuse at start, found without starting anything.

``gwproactor config`` and ``gwproactor run`` both call :func:`preflight`, so a file that
``config`` calls valid does not then fail ``run`` on something it could have seen: TLS files
that are missing, unreadable or not what they claim; a web port already taken; a state
directory that cannot be created or written; an event store written by a newer gwproactor.
Settings that are wrong in themselves (types, reserved names, clashes) are refused earlier,
by the settings model.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import ssl
from pathlib import Path

from gwproactor.config import BrokerSettings, ProactorSettings

__all__ = ("preflight",)


def preflight(settings: ProactorSettings) -> list[str]:
    """One line per problem, each naming the setting and the file or address."""
    problems: list[str] = []
    for link_name, link in settings.links.items():
        brokers = [("broker", link.broker)] + [
            (f"fallback_brokers[{i}]", b) for i, b in enumerate(link.fallback_brokers)
        ]
        for where, broker in brokers:
            problems.extend(_tls(f"links.{link_name}.{where}.tls", broker))
    if settings.web.enabled and settings.web.port:
        problem = _port_taken(settings.web.host, settings.web.port)
        if problem:
            problems.append(f"web.port: {problem}")
    paths = settings.paths.resolve(settings.name)
    problem = _dir_unusable(paths.state_dir)
    if problem:
        problems.append(f"paths.state_dir: {paths.state_dir} {problem}")
    elif paths.store_file.exists():
        problem = _store_too_new(paths.store_file)
        if problem:
            problems.append(f"store: {problem}")
    return problems


def _readable(setting: str, path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        return f"{setting}: {path} does not exist"
    except PermissionError:
        return f"{setting}: {path} is not readable by uid {os.geteuid()}"
    except OSError as e:
        return f"{setting}: {path} cannot be read: {e.strerror or e}"
    return None


def _tls(prefix: str, broker: BrokerSettings) -> list[str]:
    tls = broker.tls
    if not tls.enabled:
        return []
    files = [("ca_certs", tls.ca_certs), ("certfile", tls.certfile), ("keyfile", tls.keyfile)]
    unreadable = {
        name: problem
        for name, path in files
        if path is not None and (problem := _readable(f"{prefix}.{name}", path))
    }
    problems = list(unreadable.values())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_certs is not None and "ca_certs" not in unreadable:
        try:
            context.load_verify_locations(cafile=str(tls.ca_certs))
        except (ssl.SSLError, ValueError) as e:
            problems.append(f"{prefix}.ca_certs: {tls.ca_certs} holds no usable certificate: {e}")
    cert, key = tls.certfile, tls.keyfile
    if cert is not None and key is not None and not {"certfile", "keyfile"} & set(unreadable):
        password = tls.keyfile_password.get_secret_value() if tls.keyfile_password else None
        try:
            context.load_cert_chain(str(cert), str(key), password)
        except (ssl.SSLError, ValueError) as e:
            problems.append(
                f"{prefix}.certfile/keyfile: {cert} and {key} are not a usable certificate "
                f"and key (or the key's password is wrong): {e}"
            )
    return problems


def _port_taken(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"web.host {host!r} cannot be resolved: {e}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As aiohttp binds: SO_REUSEADDR, so a port in TIME_WAIT is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"{host}:{port} is already in use (another gateway or program listens)"
            return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def _dir_unusable(path: Path) -> str | None:
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "is not writable" if existing == path else f"cannot be created in {existing}"
        return f"{verb} by uid {os.geteuid()}"
    return None


def _store_too_new(path: Path) -> str | None:
    from gwproactor.store._schema import SCHEMA_VERSION

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # the store's own start decides (and moves a corrupt file aside)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if version > SCHEMA_VERSION:
        return (
            f"{path} was written by a newer gwproactor (schema {version}; this version reads "
            f"up to {SCHEMA_VERSION}): run the newer version, or see the README "
            '"Upgrades and downgrades"'
        )
    return None
