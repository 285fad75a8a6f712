"""The gateway's HTTP side: aiohttp servers on the proactor's own loop."""

from gwproactor.web._manager import WebManager

__all__ = ("WebManager",)
