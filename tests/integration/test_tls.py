"""TLS with client certificates against a mosquitto listener that requires them."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings, TlsSettings
from gwproactor.mqtt._failover import probe_broker
from gwproactor.testing.certs import TlsMaterial, make_tls_material
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Recorder,
    pair_settings,
    running,
    wait_active,
    wait_until,
)
from tests.support.fixtures import MosquittoFactory

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


async def test_failover_and_failback_over_tls_without_hostname_check(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    # The preferred broker's certificate names another host; the links connect to
    # 127.0.0.1 with check_hostname off. The failback probe must use the same TLS settings
    # as the link (it once left check_hostname out and failed every time: no failback).
    material = make_tls_material(tmp_path / "tls", (), server_hosts=("broker.invalid",))
    first = mosquitto_factory(name="first", tls=material, tls_require_certificate=False)
    second = mosquitto_factory(name="second")
    assert first.tls_port is not None
    preferred = BrokerSettings(
        port=first.tls_port,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.2,
        tls=TlsSettings(enabled=True, ca_certs=material.ca_cert, check_hostname=False),
    )
    link: dict[str, Any] = {
        "fallback_brokers": [
            BrokerSettings(port=second.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.2)
        ],
        "failover_after_seconds": 0.3,
        "failback_check_seconds": 0.3,
    }
    parent_settings, child_settings = pair_settings(preferred, **link)
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    gateways = {"child": parent, "parent": child}  # link name -> the gateway that has it
    async with running(parent, child):
        for name, gateway in gateways.items():
            await wait_active(gateway, name)
        with parent.listener("link.broker") as p_moves, child.listener("link.broker") as c_moves:
            await first.akill()
            for moves in (p_moves, c_moves):
                event = await moves.get(TIMEOUT)
                assert event.data["broker"].endswith(f":{second.port}")
            await first.arestart()
            for moves in (p_moves, c_moves):
                event = await moves.get(TIMEOUT)
                assert event.data["broker"].endswith(f":{first.tls_port}")
        for name, gateway in gateways.items():
            await wait_active(gateway, name)
            assert gateway.stats.link(name).broker_switches == 2


async def test_a_certificate_for_another_host_is_refused_and_no_socket_is_left_open(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    # check_hostname on (the default): the handshake fails on the name. paho drops such a
    # socket unclosed (a ResourceWarning, an error in this suite, per attempt); the
    # client factory's TLS context closes it.
    material = make_tls_material(tmp_path / "tls", (), server_hosts=("broker.invalid",))
    broker = mosquitto_factory(name="misnamed", tls=material, tls_require_certificate=False)
    assert broker.tls_port is not None
    settings = BrokerSettings(
        port=broker.tls_port,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.1,
        tls=TlsSettings(enabled=True, ca_certs=material.ca_cert),
    )
    assert probe_broker(settings, "probe") is False
    gateway = Proactor(
        ProactorSettings(name="lonely", links={"up": LinkSettings(peer="p", broker=settings)}),
        REGISTRY,
    )
    with gateway.listener("link.connect_failed") as failures:
        async with running(gateway):
            reasons = [(await failures.get(TIMEOUT)).data["reason"] for _ in range(3)]
    assert all("not valid for '127.0.0.1'" in r for r in reasons), reasons
    gc.collect()  # an unclosed socket would warn here, failing the test
