"""Raw topics: MQTT traffic outside ``gw/`` (device telemetry, other systems), per link."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from result import Result

from gwproactor.errors import LinkError
from gwproactor.links import Link
from gwproactor.mqtt import QOS, topic_matches
from gwproactor.observe.listeners import ListenerHub
from gwproactor.wire.message import Message, Payload, RawMessage

__all__ = ("RawRouter",)


class RawRouter:
    """Which communicator gets which raw topic filter of which link. Loop-only.

    Raw messages go through the same receive queue as gateway messages (``put``), so they
    get the same backpressure, stats (``raw_in``/``raw_out``) and listener events
    (``message.raw``).
    """

    def __init__(
        self,
        links: Mapping[str, Link],
        *,
        put: Callable[[Message[Any]], None],
        hub: ListenerHub,
        report_problem: Callable[..., None],
    ) -> None:
        self._links = links
        self._put = put
        self._hub = hub
        self._report_problem = report_problem
        self._routes: dict[str, list[tuple[str, str, type[Payload] | None]]] = {}

    def subscribe(
        self,
        link: Link,
        topic_filter: str,
        communicator_name: str,
        payload_type: type[Payload] | None,
        qos: QOS | None,
    ) -> None:
        routes = self._routes.setdefault(link.name, [])
        # Subscribing again (an actor restarted) replaces the route instead of doubling it.
        routes[:] = [r for r in routes if (r[0], r[1]) != (topic_filter, communicator_name)]
        routes.append((topic_filter, communicator_name, payload_type))
        link.subscribe_raw(topic_filter, qos)

    def unsubscribe(self, link: Link, topic_filter: str, communicator_name: str) -> None:
        """Stop delivering ``topic_filter`` to ``communicator_name``; the MQTT subscription
        ends when no communicator uses the filter any more."""
        routes = self._routes.get(link.name, [])
        routes[:] = [r for r in routes if (r[0], r[1]) != (topic_filter, communicator_name)]
        if not any(r[0] == topic_filter for r in routes):
            link.unsubscribe_raw(topic_filter)

    @staticmethod
    def publish(
        link: Link, topic: str, payload: bytes | Payload, qos: QOS | None, retain: bool
    ) -> Result[None, LinkError]:
        data = (
            payload
            if isinstance(payload, bytes)
            else type(payload).__pydantic_serializer__.to_json(payload)
        )
        return link.publish_raw(topic, data, qos, retain)

    def received(self, link: Link, topic: str, payload: bytes) -> None:
        if self._hub:
            self._hub.emit("message.raw", link.name, {"topic": topic, "payload": payload})
        for topic_filter, target, payload_type in self._routes.get(link.name, ()):
            if not topic_matches(topic_filter, topic):
                continue
            parsed: Payload | None = None
            if payload_type is not None:
                try:
                    parsed = payload_type.model_validate_json(payload)
                except ValidationError as e:
                    link.stats.raw_decode_errors += 1
                    self._report_problem(
                        f"{link.name}: bad JSON on {topic_filter}",
                        f"{topic}: {e.errors()[0]['msg']}",
                        key=f"raw:{link.name}:{topic_filter}",
                        error=False,
                    )
                    continue
            body = RawMessage(link=link.name, topic=topic, payload=payload, parsed=parsed)
            self._put(Message.create(link.name, target, body))
