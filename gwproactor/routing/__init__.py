"""Routing: the bounded receive queue, dispatch to communicators by destination, raw-topic
routes, and the inbound router that hands a link's decoded messages to them."""

from gwproactor.routing._dispatcher import Dispatcher
from gwproactor.routing._inbound import InboundRouter
from gwproactor.routing._raw import RawRouter

__all__ = ("Dispatcher", "InboundRouter", "RawRouter")
