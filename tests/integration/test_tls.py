"""TLS with client certificates against a mosquitto listener that requires them."""

from __future__ import annotations

import pytest

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings, TlsSettings
from tests.helpers import REGISTRY, TIMEOUT, Hello, Recorder, running, wait_active, wait_until
from tests.support.certs import TlsMaterial
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def _tls_broker(port: int, material: TlsMaterial, client: str | None) -> BrokerSettings:
    cert = material.client(client) if client else None
    return BrokerSettings(
        port=port,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.2,
        tls=TlsSettings(
            enabled=True,
            ca_certs=material.ca_cert,
            certfile=cert.cert if cert else None,
            keyfile=cert.key if cert else None,
        ),
    )


async def test_gateways_talk_over_tls_with_client_certificates(
    mosquitto_tls: Mosquitto, tls_material: TlsMaterial
) -> None:
    assert mosquitto_tls.tls_port is not None
    broker = _tls_broker(mosquitto_tls.tls_port, tls_material, "gateway")
    parent = Proactor(
        ProactorSettings(
            name="parent",
            links={"child": LinkSettings(peer="child", role="downstream", broker=broker)},
        ),
        REGISTRY,
    )
    child = Proactor(
        ProactorSettings(
            name="child",
            links={"parent": LinkSettings(peer="parent", role="upstream", broker=broker)},
        ),
        REGISTRY,
    )
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("message.dispatched") as heard:
            for n in range(20):
                parent.send_to_peer("child", Hello(n=n), actor="rx")
            await wait_until(lambda: len(rx.received) == 20, heard, TIMEOUT)
    assert [m.payload.n for m in rx.received] == list(range(20))


async def test_without_client_certificate_the_link_never_connects(
    mosquitto_tls: Mosquitto, tls_material: TlsMaterial
) -> None:
    assert mosquitto_tls.tls_port is not None
    broker = _tls_broker(mosquitto_tls.tls_port, tls_material, None)
    gateway = Proactor(
        ProactorSettings(name="lonely", links={"up": LinkSettings(peer="parent", broker=broker)}),
        REGISTRY,
    )
    link = gateway.link("up")
    with gateway.listener("link.connect_failed") as failures:
        async with running(gateway):
            reasons = [(await failures.get(TIMEOUT)).data["reason"] for _ in range(3)]
        assert link.stats.connect_failures >= 3
        assert link.stats.connects == 0
    assert all("SSL" in r or "certificate" in r.lower() for r in reasons), reasons
