"""The paho door (gwproactor.mqtt._paho): every private paho name gwproactor relies on exists
on the installed paho, and the installed paho is one the project allows.

``scripts/paho_matrix.py`` runs this file (and the other MQTT tests) against the lowest and the
highest paho release that ``pyproject.toml`` allows.
"""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import paho.mqtt
import pytest
from packaging.requirements import Requirement
from paho.mqtt.client import Client, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion

from gwproactor.mqtt._buffered import BufferedClient
from gwproactor.mqtt._paho import (
    PRIVATE_INFO_NAMES,
    PRIVATE_NAMES,
    PUBLIC_NAMES_SINCE,
    PahoClient,
    attach_socket,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def paho_requirement() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith("paho-mqtt")]
    return Requirement(spec)


@pytest.fixture
def client() -> Client:
    return Client(CallbackAPIVersion.VERSION2, client_id="door")


def test_the_installed_paho_is_an_allowed_release() -> None:
    assert paho_requirement().specifier.contains(paho.mqtt.__version__), paho.mqtt.__version__


@pytest.mark.parametrize("name", sorted(PRIVATE_NAMES))
def test_each_private_name_exists_on_the_installed_paho(client: Client, name: str) -> None:
    assert hasattr(client, name), f"paho {paho.mqtt.__version__} has no {name}"


@pytest.mark.parametrize("name", sorted(PRIVATE_INFO_NAMES))
def test_each_private_name_of_message_info_exists_on_the_installed_paho(name: str) -> None:
    assert callable(getattr(MQTTMessageInfo, name, None)), f"paho has no MQTTMessageInfo.{name}"


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES_SINCE))
def test_each_newer_public_name_exists_on_the_installed_paho(client: Client, name: str) -> None:
    assert callable(getattr(client, name, None)), f"paho {paho.mqtt.__version__} has no {name}"


def test_the_private_names_have_the_shape_the_door_expects(client: Client) -> None:
    # The parser's state: command 0 until a packet's first byte is read.
    assert client._in_packet["command"] == 0
    # Set per parsed packet and read by the keepalive check: a float of time.monotonic().
    assert isinstance(client._last_bytes_received, float)
    assert hasattr(client._msgtime_mutex, "__enter__")
    for hook, params in {
        "_sock_recv": ["self", "bufsize"],
        "_sock_send": ["self", "buf"],
        "_sock_close": ["self"],
        "_packet_read": ["self"],
        "_loop_rc_handle": ["self", "rc"],
        "_send_puback": ["self", "mid"],
        "_update_inflight": ["self"],
    }.items():
        assert list(inspect.signature(getattr(Client, hook)).parameters) == params, hook


def test_paho_reads_writes_and_closes_through_the_hooks() -> None:
    # paho's own read, write and close paths reach the three hooks the door overrides, so
    # BufferedClient's buffering sees every byte.
    calls: list[str] = []

    class Recording(PahoClient):
        def sock_recv(self, bufsize: int) -> bytes:
            calls.append("recv")
            raise BlockingIOError

        def sock_send(self, buf: bytes | bytearray) -> int:
            calls.append("send")
            return len(buf)

        def sock_close(self) -> None:
            calls.append("close")

    client = Recording(CallbackAPIVersion.VERSION2, client_id="door")
    assert client.read_one_packet() != 0  # no socket: paho does not read
    attach_socket(client, _NullSocket())
    client.read_one_packet()
    client.send_puback(1)
    client.loop_write()
    client.close_socket()
    assert calls[0] == "recv"
    assert "send" in calls
    assert calls[-1] == "close"


def test_no_name_of_ours_shadows_a_paho_name_by_accident(client: Client) -> None:
    # A method or attribute BufferedClient or the door adds must not reuse a name paho has
    # (a paho release that adds one would otherwise be overridden silently); the only
    # deliberate overrides are the three socket hooks.
    ours = BufferedClient(CallbackAPIVersion.VERSION2, client_id="door")
    theirs = set(dir(client))
    added = {
        name
        for cls in (PahoClient, BufferedClient)
        for name in vars(cls)
        if not (name.startswith("__") and name.endswith("__"))
    } | (set(vars(ours)) - set(vars(client)))
    assert added & theirs == {"_sock_recv", "_sock_send", "_sock_close"}


PAHO_CLASSES = {"Client", "PahoClient", "BufferedClient"}


def test_subclasses_of_paho_reach_its_private_parts_through_the_door_only() -> None:
    # ruff's SLF rule cannot see ``self._x`` in a subclass of paho's Client, where ``_x``
    # may be paho's own: outside the door, such a subclass's private names are its own
    # (``_gw_*``, which paho does not use).
    package = Path(__file__).resolve().parents[2] / "gwproactor"
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        if path.name == "_paho.py" or "Client" not in text:
            continue
        for cls in ast.walk(ast.parse(text)):
            if not isinstance(cls, ast.ClassDef):
                continue
            if not {getattr(b, "id", getattr(b, "attr", "")) for b in cls.bases} & PAHO_CLASSES:
                continue
            for node in ast.walk(cls):
                if not isinstance(node, ast.Attribute):
                    continue
                name = node.attr
                target = node.value
                is_self = isinstance(target, ast.Name) and target.id == "self"
                is_super = (
                    isinstance(target, ast.Call) and getattr(target.func, "id", "") == "super"
                )
                private = name.startswith("_") and not name.startswith(("__", "_gw_"))
                if (is_self or is_super) and private:
                    found.append(f"{path.name}:{node.lineno} {cls.name}: {name}")
    assert found == []
    assert not [n for n in dir(Client) if n.startswith("_gw_")]


class _NullSocket:
    """Enough of a socket for paho to believe it is connected."""

    def recv(self, _size: int) -> bytes:
        raise BlockingIOError

    def send(self, buf: bytes | bytearray) -> int:
        return len(buf)

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def setblocking(self, _flag: bool) -> None:
        pass
