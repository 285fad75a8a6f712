"""Throw-away TLS material for tests, made with the ``openssl`` command line tool.

:func:`make_tls_material` creates, in a directory, one certificate authority, a server
certificate for ``127.0.0.1`` / ``localhost`` signed by it, and one client certificate per
name (``CN`` = the name, for mosquitto's ``use_identity_as_username``). Keys are EC P-256:
generating them takes milliseconds, where RSA keys would take far longer.

The extensions are those that strict verifiers (Python >= 3.13's default
``VERIFY_X509_STRICT``, OpenSSL 3) insist on: the CA has critical ``basicConstraints`` and
``keyUsage``, the leaves have authority and subject key identifiers and an
``extendedKeyUsage`` of ``serverAuth`` or ``clientAuth``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ("CertificateError", "ClientCert", "TlsMaterial", "find_openssl", "make_tls_material")

SERVER_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_DAYS = 7
_CURVE = "prime256v1"  # NIST P-256
_OPENSSL_TIMEOUT_S = 30.0


class CertificateError(RuntimeError):
    """openssl is missing or one of its invocations failed (its stderr is in the message)."""


class ClientCert(NamedTuple):
    """Paths of one client's PEM certificate and unencrypted PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files made by :func:`make_tls_material`. Immutable; files are not.

    ``clients`` holds ``(name, ClientCert)`` pairs in the order the names were given; use
    :meth:`client` to look one up.
    """

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: tuple[tuple[str, ClientCert], ...]

    @property
    def client_names(self) -> tuple[str, ...]:
        """The client names, in creation order."""
        return tuple(name for name, _ in self.clients)

    def client(self, name: str) -> ClientCert:
        """Return the certificate and key of client ``name``; ``KeyError`` if there is none."""
        for client_name, cert in self.clients:
            if client_name == name:
                return cert
        raise KeyError(f"no client certificate named {name!r}; have {self.client_names}")


def find_openssl() -> str:
    """Return the path of the ``openssl`` executable; raise :class:`CertificateError` if absent."""
    found = shutil.which("openssl") or shutil.which("openssl", path="/usr/bin:/usr/local/bin")
    if found is None:
        raise CertificateError(
            "openssl is not installed; run scripts/_bootstrap.sh (or apt-get install openssl)"
        )
    return found


def make_tls_material(
    dir: Path,
    clients: Sequence[str] = ("client",),
    *,
    days: int = DEFAULT_DAYS,
    server_hosts: Sequence[str] = SERVER_HOSTS,
) -> TlsMaterial:
    """Create a CA, a server certificate and one client certificate per name in ``dir``.

    ``dir`` is created if missing; files already there with the same names are overwritten.
    The server certificate has ``CN=`` the first DNS name of ``server_hosts`` (else the
    first address) and a subjectAltName
    for each of them (default ``IP:127.0.0.1, DNS:localhost``; name others to test a
    certificate that does not match the address connected to); each client certificate
    has ``CN=<name>``. Certificates are valid from
    now for ``days`` days. Private keys are written with mode 0600 and are not encrypted.

    Client names must be unique, non-empty, and made of letters, digits, ``-``, ``_`` and
    ``.`` (they are used in file names and subjects): otherwise ``ValueError``.
    Raises :class:`CertificateError` when openssl is missing or fails. Blocking (runs
    several short subprocesses, in parallel where they are independent); thread-safe for
    distinct directories.
    """
    names = tuple(clients)
    _check_names(names)
    openssl = find_openssl()
    dir.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = dir / "ca.crt", dir / "ca.key"
    _run(
        openssl,
        "req", "-x509", "-new", "-nodes",
        "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{_CURVE}",
        "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", str(days), "-sha256", "-subj", "/CN=gwproactor test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    if not server_hosts:
        raise ValueError("the server certificate needs at least one host name")
    san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in server_hosts)
    server_cn = next((h for h in server_hosts if not h[0].isdigit()), server_hosts[0])
    jobs = [("server", server_cn, _leaf_extensions("serverAuth", f"subjectAltName={san}"))]
    jobs += [(f"client-{name}", name, _leaf_extensions("clientAuth")) for name in names]
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = [
            pool.submit(
                _issue,
                openssl,
                dir,
                stem,
                common_name=cn,
                extensions=extensions,
                ca_cert=ca_cert,
                ca_key=ca_key,
                days=days,
            )
            for stem, cn, extensions in jobs
        ]
        issued = [future.result() for future in futures]
    server, client_certs = issued[0], issued[1:]
    return TlsMaterial(
        dir=dir,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=server.cert,
        server_key=server.key,
        clients=tuple(zip(names, client_certs, strict=True)),
    )


def _check_names(names: tuple[str, ...]) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    for name in names:
        if not name or not set(name) <= allowed:
            raise ValueError(f"invalid client certificate name {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate client certificate names in {names}")


def _leaf_extensions(extended_key_usage: str, *extra: str) -> str:
    """Return an openssl extension file body for a leaf certificate (ECDSA key)."""
    lines = (
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={extended_key_usage}",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid:always",
        *extra,
    )
    return "".join(f"{line}\n" for line in lines)


def _issue(
    openssl: str,
    dir: Path,
    stem: str,
    *,
    common_name: str,
    extensions: str,
    ca_cert: Path,
    ca_key: Path,
    days: int,
) -> ClientCert:
    """Make key + CSR in one call, then sign it with the CA; return the cert and key paths."""
    key, csr, cert, ext = (dir / f"{stem}{suffix}" for suffix in (".key", ".csr", ".crt", ".ext"))
    _run(
        openssl,
        "req", "-new", "-nodes",
        "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{_CURVE}",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}",
    )  # fmt: skip
    ext.write_text(extensions)
    _run(
        openssl,
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(days), "-sha256",
        "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    os.chmod(key, 0o600)
    return ClientCert(cert=cert, key=key)


def _run(*argv: str) -> None:
    try:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            text=True,
            timeout=_OPENSSL_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as exc:
        raise CertificateError(
            f"{' '.join(argv[:3])} ... failed with exit code {exc.returncode}: {exc.stderr.strip()}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise CertificateError(f"{' '.join(argv[:3])} ... timed out") from exc
