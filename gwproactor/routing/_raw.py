"""Raw topics: MQTT traffic outside ``gw/`` (device telemetry, other systems), per link."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from result import Result

from gwproactor.errors import LinkError
from gwproactor.links import Link
from gwproactor.mqtt import QOS
from gwproactor.observe.listeners import ListenerHub
from gwproactor.wire.message import Message, Payload, RawMessage

__all__ = ("RawRouter", "TopicTree")

# (sequence, filter, communicator, payload type): the sequence keeps delivery in the order
# the routes were made (a route made again moves to the end), whichever filters matched.
_Route = tuple[int, str, str, type[Payload] | None]


def _sequence(route: _Route) -> int:
    return route[0]


class _Node:
    __slots__ = ("children", "filter")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.filter: str | None = None  # the filter that ends at this node


class TopicTree:
    """MQTT topic filters in a tree of their levels: ``match(topic)`` walks the topic's
    levels once (plus the ``+``/``#`` branches), whatever the number of filters. Same
    semantics as paho's ``topic_matches_sub`` (``#`` also matches its parent level; a
    leading wildcard does not match a ``$`` topic)."""

    __slots__ = ("_root",)

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, topic_filter: str) -> None:
        node = self._root
        for part in topic_filter.split("/"):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        node.filter = topic_filter

    def remove(self, topic_filter: str) -> None:
        path = [self._root]
        parts = topic_filter.split("/")
        for part in parts:
            child = path[-1].children.get(part)
            if child is None:
                return
            path.append(child)
        path[-1].filter = None
        # Prune the branch up to the first node still in use.
        for depth in range(len(parts), 0, -1):
            node = path[depth]
            if node.filter is not None or node.children:
                break
            del path[depth - 1].children[parts[depth - 1]]

    def match(self, topic: str) -> list[str]:
        """The filters that match ``topic`` (in no particular order)."""
        parts = topic.split("/")
        last = len(parts)
        normal = not topic.startswith("$")
        out: list[str] = []
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            children = node.children
            wild = normal or i > 0
            if wild and "#" in children:
                rest = children["#"].filter
                if rest is not None:
                    out.append(rest)
            if i == last:
                if node.filter is not None:
                    out.append(node.filter)
                continue
            child = children.get(parts[i])
            if child is not None:
                stack.append((child, i + 1))
            if wild and "+" in children:
                stack.append((children["+"], i + 1))
        return out


class _LinkRoutes:
    """The routes of one link: a tree of their filters, and a bounded topic → routes cache
    (cleared whenever a route is made or removed)."""

    CACHE_TOPICS = 4096

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], _Route] = {}  # (filter, communicator) → route
        self.by_filter: dict[str, list[_Route]] = {}
        self.tree = TopicTree()
        self.match = self._cached()

    def _cached(self) -> Callable[[str], tuple[_Route, ...]]:
        return functools.lru_cache(maxsize=self.CACHE_TOPICS)(self._match)

    def _match(self, topic: str) -> tuple[_Route, ...]:
        by_filter = self.by_filter
        filters = self.tree.match(topic)
        if len(filters) == 1:
            return tuple(by_filter[filters[0]])
        return tuple(sorted((r for f in filters for r in by_filter[f]), key=_sequence))

    def add(self, route: _Route) -> None:
        _, topic_filter, target, _ = route
        self.remove(topic_filter, target)
        self.routes[topic_filter, target] = route
        same = self.by_filter.get(topic_filter)
        if same is None:
            self.by_filter[topic_filter] = [route]
            self.tree.add(topic_filter)
        else:
            same.append(route)
        self.match = self._cached()

    def remove(self, topic_filter: str, target: str) -> None:
        route = self.routes.pop((topic_filter, target), None)
        if route is None:
            return
        same = self.by_filter[topic_filter]
        same.remove(route)
        if not same:
            del self.by_filter[topic_filter]
            self.tree.remove(topic_filter)
        self.match = self._cached()


class RawRouter:
    """Which communicator gets which raw topic filter of which link. Loop-only.

    Raw messages go through the same receive queue as gateway messages (``put``), so they
    get the same backpressure, stats (``raw_in``/``raw_out``) and listener events
    (``message.raw``). Each link's filters are kept in a :class:`TopicTree` with a bounded
    topic → routes cache, so the cost per message does not grow with the number of filters.
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
        self._routes: dict[str, _LinkRoutes] = {}
        self._sequence = itertools.count()

    def subscribe(
        self,
        link: Link,
        topic_filter: str,
        communicator_name: str,
        payload_type: type[Payload] | None,
        qos: QOS | None,
    ) -> None:
        routes = self._routes.get(link.name)
        if routes is None:
            routes = self._routes[link.name] = _LinkRoutes()
        # Subscribing again (an actor restarted) replaces the route instead of doubling it.
        routes.add((next(self._sequence), topic_filter, communicator_name, payload_type))
        link.subscribe_raw(topic_filter, qos)

    def unsubscribe(self, link: Link, topic_filter: str, communicator_name: str) -> None:
        """Stop delivering ``topic_filter`` to ``communicator_name``; the MQTT subscription
        ends when no communicator uses the filter any more."""
        routes = self._routes.get(link.name)
        if routes is not None:
            routes.remove(topic_filter, communicator_name)
        if routes is None or topic_filter not in routes.by_filter:
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
        routes = self._routes.get(link.name)
        if routes is None:
            return
        for _, topic_filter, target, payload_type in routes.match(topic):
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
                        kind="raw_decode",
                        error=False,
                    )
                    continue
            body = RawMessage.create(link.name, topic, payload, parsed)
            self._put(Message.create(link.name, target, body))
