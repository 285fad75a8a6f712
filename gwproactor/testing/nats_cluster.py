"""A three-node nats-server cluster with JetStream and MQTT, on loopback ports.

Each node is a :class:`~gwproactor.testing.nats.NatsServer` (its own work directory,
JetStream store, MQTT and client ports) with a ``cluster { }`` block whose routes name all
three nodes. NATS keeps MQTT sessions, retained messages and QoS 1 state in JetStream
streams; with ``mqtt { stream_replicas: 3 }`` every node holds a copy, so the cluster keeps
serving MQTT when one node dies. With the default (1 replica) a stream lives on one node
only, and when that node dies nothing can connect anywhere (issue 17, item 11).

The nodes must start together: a node answers an MQTT CONNECT only once JetStream can
create its replicated streams, which needs a quorum of the cluster. :meth:`NatsCluster.astart`
starts all three concurrently. Same process hygiene as a single :class:`NatsServer`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Self

from gwproactor.testing.nats import NatsServer
from gwproactor.testing.ports import free_listen_port

__all__ = ("CLUSTER_NAME", "NatsCluster")

CLUSTER_NAME = "gw_test_cluster"


class NatsCluster:
    """Three :class:`NatsServer` nodes in one JetStream cluster. No I/O until started.

    ``stream_replicas`` goes into every node's ``mqtt { }`` block (3: survives one node).
    ``mqtt_config`` adds more lines there (e.g. ``ack_wait: "2s"``).
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        nodes: int = 3,
        stream_replicas: int = 3,
        mqtt_config: str = "",
        start_timeout: float = 30.0,
    ) -> None:
        self.work_dir = work_dir
        exclude: set[int] = set()
        self.cluster_ports: list[int] = []
        for _ in range(nodes):
            port = free_listen_port(exclude=frozenset(exclude))
            exclude.add(port)
            self.cluster_ports.append(port)
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.cluster_ports)
        self.nodes: list[NatsServer] = []
        for index, cluster_port in enumerate(self.cluster_ports):
            cluster = "\n".join(
                [
                    "cluster {",
                    f"  name: {CLUSTER_NAME}",
                    f'  listen: "127.0.0.1:{cluster_port}"',
                    f"  routes: [{routes}]",
                    "}",
                ]
            )
            self.nodes.append(
                NatsServer(
                    work_dir / f"node{index}",
                    name=f"nats{index}",
                    mqtt_config="\n".join(
                        line
                        for line in (f"stream_replicas: {stream_replicas}", mqtt_config)
                        if line
                    ),
                    extra_config=cluster,
                    start_timeout=start_timeout,
                )
            )

    @property
    def ports(self) -> list[int]:
        """The MQTT port of every node, in node order."""
        return [node.port for node in self.nodes]

    async def astart(self) -> Self:
        """Start every node at once; return when each answers an MQTT CONNECT. On failure
        every node is killed and the first error is raised."""
        for node in self.nodes:
            node.work_dir.mkdir(parents=True, exist_ok=True)
        results = await asyncio.gather(
            *(node.astart() for node in self.nodes), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.kill()
            raise errors[0]
        return self

    def node_on(self, port: int) -> NatsServer:
        """The node whose MQTT port is ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def kill(self) -> None:
        """SIGKILL every node that runs. Blocking, idempotent."""
        for node in self.nodes:
            node.kill()

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(f"--- {node.name}\n{node.log_tail(lines)}" for node in self.nodes)
