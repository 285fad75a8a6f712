"""The one place a paho client is built from :class:`~gwproactor.config.BrokerSettings`.

The link's connection (:func:`gwproactor.mqtt._buffered.new_client`) and the failover probe
(:func:`gwproactor.mqtt._failover.probe_broker`) both come from :func:`new_paho_client`, so
both get the same protocol version, credentials, TLS (with or without the hostname check),
connect timeout and socket options: a probe built differently once failed on a broker the
link itself could reach (no ``check_hostname = false``), so the link never failed back.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, TypeVar

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gwproactor.config import BrokerSettings, TlsSettings

__all__ = ("new_paho_client",)

_log = logging.getLogger("gwproactor.mqtt")

C = TypeVar("C", bound=Client)


def new_paho_client(
    settings: BrokerSettings,
    client_id: str,
    client_class: type[C],
    *,
    will: tuple[str, bytes] | None = None,
    throwaway: bool = False,
) -> C:
    """A ``client_class`` for ``settings``'s broker, not connected (no I/O happens here).

    Sets the protocol version, the session (``clean_session``; a ``throwaway`` client such
    as a probe always starts and leaves no session on the broker), the connect timeout, the
    in-flight limit (if set), credentials, TLS (CA, client certificate, ``check_hostname``), a
    retained QoS 1 ``will`` (``(wire topic, payload)``) and, once a socket is open, the
    socket options (``tcp_nodelay``). Raises :class:`ValueError` or :class:`OSError` from
    paho for TLS files it cannot load (settings validation catches the usual cases first).
    """
    v5 = settings.protocol == "5"
    clean_session = True if throwaway else settings.clean_session
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean_session,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    client.connect_timeout = settings.connect_timeout_seconds
    if settings.max_inflight is not None:
        client.max_inflight_messages_set(settings.max_inflight)
    # else: the link's wrapper sets it at CONNACK (see MQTTClientWrapper._on_connect)
    if settings.username is not None:
        client.username_pw_set(
            settings.username,
            settings.password.get_secret_value() if settings.password else None,
        )
    if settings.tls.enabled:
        client.tls_set_context(tls_context(settings.tls))
        client.tls_insecure_set(not settings.tls.check_hostname)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    if settings.tcp_nodelay:
        client.on_socket_open = _set_nodelay
    return client


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """The client context paho's ``tls_set`` would build (TLS 1.2+, the certificate
    required, the hostname checked unless ``check_hostname`` is off), except that a socket
    whose handshake fails is closed at once: paho drops it unclosed, one ResourceWarning
    (and one file descriptor until the next collection) per failed attempt."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.sslsocket_class = _ClosingSSLSocket
    if tls.certfile is not None:
        context.load_cert_chain(
            tls.certfile,
            tls.keyfile,
            tls.keyfile_password.get_secret_value() if tls.keyfile_password else None,
        )
    if tls.ca_certs is not None:
        context.load_verify_locations(tls.ca_certs)
    else:
        context.load_default_certs()
    context.check_hostname = tls.check_hostname
    return context


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSLSocket that closes itself when its handshake fails."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _set_nodelay(_client: Client, _userdata: Any, sock: Any) -> None:
    """paho calls this once the socket is open (TLS handshake done), before CONNECT."""
    if isinstance(sock, socket.socket):  # an SSLSocket is one too
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:  # e.g. a unix socket; harmless
            _log.debug("TCP_NODELAY not set: %s", e)
