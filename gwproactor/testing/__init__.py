"""Tools for running gateways against real brokers: private mosquitto processes on free
loopback ports, TLS material made with openssl. Used by the demo, the benchmarks and the
test suite; nothing here is needed to run a gateway in production."""

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
    "CertificateError",
    "ClientCert",
    "Mosquitto",
    "MosquittoError",
    "MosquittoNotFoundError",
    "MosquittoOptions",
    "MosquittoStartError",
    "TlsMaterial",
    "find_mosquitto",
    "free_listen_port",
    "free_port",
    "hash_password",
    "make_tls_material",
    "port_is_free",
    "write_password_file",
)
