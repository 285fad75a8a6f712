"""Test infrastructure: real mosquitto brokers on free ports, TLS material, free ports.

The pytest fixtures and ``MosquittoFactory`` live in :mod:`.fixtures` (load it as a plugin
through ``pytest_plugins``; do not import it here, see its docstring); this package exports
the helpers tests use directly.
"""

from gwproactor.testing.certs import CertificateError, ClientCert, TlsMaterial, make_tls_material
from gwproactor.testing.mosquitto import (
    Mosquitto,
    MosquittoError,
    MosquittoNotFoundError,
    MosquittoOptions,
    MosquittoStartError,
    find_mosquitto,
    hash_password,
    write_password_file,
)
from gwproactor.testing.ports import LOOPBACK, free_listen_port, free_port, port_is_free

__all__ = (
    "LOOPBACK",
    "free_port",
    "free_listen_port",
    "port_is_free",
    "TlsMaterial",
    "ClientCert",
    "CertificateError",
    "make_tls_material",
    "Mosquitto",
    "MosquittoOptions",
    "MosquittoError",
    "MosquittoNotFoundError",
    "MosquittoStartError",
    "find_mosquitto",
    "hash_password",
    "write_password_file",
)
