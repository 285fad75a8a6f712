"""Choosing a link's codec from its settings (``codec = "native"`` or ``"gwproto"``)."""

from __future__ import annotations

from gwproactor.config import LinkSettings
from gwproactor.wire.codec import Codec, JsonCodec, MessageRegistry

__all__ = ("codec_for_link",)


def codec_for_link(gateway: str, settings: LinkSettings, registry: MessageRegistry) -> Codec:
    """The codec a link with these settings speaks (settings are validated: a gwproto link
    has its peer and both short names)."""
    if settings.codec == "gwproto":
        # Imported only by gateways with a gwproto link (start-up time and memory).
        from gwproactor.wire.gwproto import GwprotoCodec

        assert settings.peer and settings.short_name and settings.peer_short_name
        return GwprotoCodec(
            registry,
            gateway=gateway,
            short_name=settings.short_name,
            peer=settings.peer,
            peer_short_name=settings.peer_short_name,
            max_payload_bytes=settings.max_payload_bytes,
        )
    return JsonCodec(registry, settings.max_payload_bytes)
