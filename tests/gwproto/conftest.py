"""Fixtures of the gwproto suite: the 4.1.13 peer environment and peer processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gwproto.peer_env import Gw4Peer, peer_python

PeerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gw4Peer]]


@pytest.fixture(scope="session")
def gw4_python() -> Path:
    """The interpreter of the gridworks-proactor 4.1.13 environment (made and cached on
    first use; ``scripts/test`` makes it before pytest starts). Fails, never skips."""
    try:
        return peer_python()
    except (RuntimeError, OSError) as e:
        pytest.fail(f"cannot make the 4.1.13 peer environment: {e}", pytrace=False)


@pytest.fixture
def gw4_peer(gw4_python: Path, tmp_path: Path) -> PeerFactory:
    """``async with gw4_peer(role=..., port=..., long_name=..., ...) as peer``: a started
    4.1.13 gateway, stopped (killed if need be) on leaving the block."""
    count = 0

    @contextlib.asynccontextmanager
    async def start(**kwargs: Any) -> AsyncIterator[Gw4Peer]:
        nonlocal count
        count += 1
        kwargs.setdefault("data_dir", tmp_path / f"gw4-{count}-{kwargs['short_name']}")
        peer = Gw4Peer(gw4_python, **kwargs)
        try:
            await peer.start()
            yield peer
        finally:
            await peer.close()

    return start
