"""Routing: the bounded receive queue, dispatch to communicators by destination, raw-topic
routes, and the inbound glue that hands a link's decoded messages to them."""
