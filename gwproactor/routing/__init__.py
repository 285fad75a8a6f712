"""Routing: the bounded receive queue, dispatch to communicators by destination, raw-topic
routes, and the inbound router that hands a link's decoded messages to them."""

from gwproactor.routing._dispatcher import Dispatcher
from gwproactor.routing._inbound import InboundRouter
from gwproactor.routing._raw import RawRouter
from gwproactor.routing._routes import Routes, validate_route_key

__all__ = ("Dispatcher", "InboundRouter", "RawRouter", "Routes", "validate_route_key")
