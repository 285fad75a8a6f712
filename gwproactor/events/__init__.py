"""Events: durable store-and-forward to the upstream peer."""

from gwproactor.events._future import EventFuture
from gwproactor.events._manager import EventManager
from gwproactor.events._uploader import Uploader, UploaderStats

__all__ = ("EventFuture", "EventManager", "Uploader", "UploaderStats")
