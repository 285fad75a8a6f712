"""A gridworks-proactor 4.1.13 gateway for the gwproto interoperability tests.

Run it with the Python of the peer environment (``tests/gwproto/peer_env.py`` makes it):
it imports the *4.1.13* ``gwproactor`` and ``gwproto`` packages, not this repository's,
which is why this file is kept out of mypy and out of the test collection.

It starts one 4.1.13 App with one MQTT link, as a child (``--role child``: the link is
upstream, like a SCADA uploading events) or a parent (``--role parent``: the link is
downstream, like an AtomicTNode). Nothing here changes how 4.1.13 talks on the wire; the
subclasses only *observe* (events generated, acks received, messages received, link
states) and let a test pause the sending of acks.

Control: one JSON object per line on stdin:
  {"cmd": "events", "n": 10, "type": "gridworks.event.test.reading", "fields": {...}}
  {"cmd": "message", "watts": 42}          a power.watts message, AckRequired, with an id
  {"cmd": "pause_acks"} / {"cmd": "resume_acks"}
  {"cmd": "stop"}                          (end of stdin stops as well)
Reports: one JSON object per line on stdout, each with a "kind" (ready, state, pending,
generated, acked, received, ack_sent, ack_withheld, error, stopping).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from gwproto import HardwareLayout, Message
from gwproto.messages import EventBase, ProblemEvent
from gwproto.named_types import PowerWatts
from gwproactor import App, AppSettings, Proactor
from gwproactor.actors.actor import PrimeActor
from gwproactor.config import MQTTClient, Paths
from gwproactor.config.links import LinkSettings
from gwproactor.config.proactor_config import ProactorName
from gwproactor.config.proactor_settings import ProactorSettings
from gwproactor.message import InternalShutdownMessage
from gwproactor.persister import PersisterInterface, TimedRollingFilePersister
from pydantic import ConfigDict

LINK = "peer"
_OUT_LOCK = threading.Lock()


def report(kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, "t": time.monotonic(), **fields}, default=str)
    with _OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class TestEvent(EventBase):
    """An event with a free type name and free extra fields (the test chooses them)."""

    model_config = ConfigDict(extra="allow")
    TypeName: str


class PeerSettings(AppSettings):
    peer: MQTTClient = MQTTClient()


class ObservedProactor(Proactor):
    """Proactor 4.1.13 with reports on what it generates, acks and how its link fares."""

    acks_paused = False

    def generate_event(self, event: Any) -> Any:
        if not event.Src:  # as LinkManager.generate_event does, so the report shows it
            event.Src = self.publication_name
        fields: dict[str, Any] = {
            "type": event.TypeName,
            "id": event.MessageId,
            "payload": event.model_dump(mode="json"),
        }
        if isinstance(event, ProblemEvent):
            fields["summary"] = event.Summary
            fields["details"] = event.Details[:400]
        report("generated", **fields)
        return super().generate_event(event)

    def _process_ack(self, link_name: str, message_id: str) -> None:
        report("acked", id=message_id)
        super()._process_ack(link_name, message_id)

    def install_ack_gate(self) -> None:
        links = self._links
        original = links.send_ack

        def send_ack(link_name: str, message: Message[Any]) -> None:
            if self.acks_paused:
                report("ack_withheld", id=message.Header.MessageId, type=message.message_type())
                return
            report("ack_sent", id=message.Header.MessageId, type=message.message_type())
            original(link_name, message)

        links.send_ack = send_ack  # type: ignore[method-assign]
        publish = links.publish_message

        def publish_message(link_name: str, message: Message[Any], *args: Any, **kw: Any) -> Any:
            report(
                "sent",
                type=message.message_type(),
                id=message.Header.MessageId,
                ack_required=message.Header.AckRequired,
            )
            return publish(link_name, message, *args, **kw)

        links.publish_message = publish_message  # type: ignore[method-assign]

    async def watch(self) -> None:
        last: tuple[Any, ...] = ()
        while True:
            state = self._links.link_state(LINK)
            now = (
                state.value if state is not None else None,
                self._links.num_pending,
                len(self._links._in_flight_events),
                self._links.num_reupload_pending,
            )
            if now != last:
                report(
                    "state",
                    state=now[0],
                    pending=now[1],
                    in_flight=now[2],
                    reupload_pending=now[3],
                )
                last = now
            await asyncio.sleep(0.05)


class PeerActor(PrimeActor):
    def process_mqtt_message(self, mqtt_client_message: Any, decoded: Message[Any]) -> None:
        payload = decoded.Payload
        report(
            "received",
            type=decoded.message_type(),
            id=decoded.Header.MessageId,
            src=decoded.Header.Src,
            dst=decoded.Header.Dst,
            ack_required=decoded.Header.AckRequired,
            topic=mqtt_client_message.Payload.message.topic,
            is_event=isinstance(payload, EventBase),
            payload=payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload,
        )


def make_app(args: argparse.Namespace) -> App:
    class PeerApp(App):
        @classmethod
        def app_settings_type(cls) -> type[PeerSettings]:
            return PeerSettings

        @classmethod
        def prime_actor_type(cls) -> type[PeerActor]:
            return PeerActor

        @classmethod
        def proactor_type(cls) -> type[Proactor]:
            return ObservedProactor

        @classmethod
        def paths_name(cls) -> str:
            return args.short_name

        def _get_name(self, layout: HardwareLayout) -> ProactorName:
            return ProactorName(long_name=args.long_name, short_name=args.short_name)

        def _get_link_settings(
            self, name: ProactorName, layout: HardwareLayout, brokers: dict[str, MQTTClient]
        ) -> dict[str, LinkSettings]:
            return {
                LINK: LinkSettings(
                    broker_name=LINK,
                    peer_long_name=args.peer_long_name,
                    peer_short_name=args.peer_short_name,
                    upstream=args.role == "child",
                    downstream=args.role == "parent",
                )
            }

        def _make_persister(self, settings: AppSettings) -> PersisterInterface:
            return TimedRollingFilePersister(settings.paths.event_dir)

    data = Path(args.data_dir).resolve()
    settings = PeerSettings(
        paths=Paths(
            name=args.short_name,
            data_home=data / "data",
            state_home=data / "state",
            config_home=data / "config",
        ),
        peer=MQTTClient(host=args.host, port=args.port, tls={"use_tls": False}),
        proactor=ProactorSettings(
            mqtt_link_poll_seconds=args.ping_seconds,
            ack_timeout_seconds=args.ack_timeout,
        ),
    )
    settings.logging.base_log_level = 30
    layout = HardwareLayout(
        layout={
            "ShNodes": [
                {
                    "ShNodeId": str(uuid.uuid4()),
                    "Name": args.short_name,
                    "ActorClass": "NoActor",
                    "TypeName": "spaceheat.node.gt",
                }
            ]
        },
        cacs={},
        components={},
        nodes={},
        data_channels={},
        synth_channels={},
    )
    settings.paths.mkdirs()
    return PeerApp(app_settings=settings, layout=layout, env_file=data / "none.env")


def command(app: App, proactor: ObservedProactor, cmd: dict[str, Any]) -> None:
    match cmd.get("cmd"):
        case "events":
            fields = dict(cmd.get("fields", {}))
            for i in range(int(cmd["n"])):
                event = TestEvent(TypeName=cmd["type"], Seq=i, **fields)
                proactor.generate_event(event)
        case "message":
            message = Message(
                Src=app.publication_name,
                Payload=PowerWatts(Watts=int(cmd["watts"])),
                AckRequired=True,
                MessageId=str(uuid.uuid4()),
            )
            report("message_sent", id=message.Header.MessageId)
            proactor.publish_message(LINK, message)
        case "pause_acks":
            proactor.acks_paused = True
        case "resume_acks":
            proactor.acks_paused = False
        case "stop":
            report("stopping")
            app.send_threadsafe(InternalShutdownMessage(Src="peer", Reason="test stop"))
            threading.Timer(3.0, lambda: os._exit(0)).start()
        case other:
            report("error", error=f"unknown command {other!r}")


def read_stdin(app: App, proactor: ObservedProactor, loop: asyncio.AbstractEventLoop) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        loop.call_soon_threadsafe(command, app, proactor, cmd)
        if cmd.get("cmd") == "stop":
            return
    loop.call_soon_threadsafe(command, app, proactor, {"cmd": "stop"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("child", "parent"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--long-name", required=True)
    parser.add_argument("--short-name", required=True)
    parser.add_argument("--peer-long-name", required=True)
    parser.add_argument("--peer-short-name", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ping-seconds", type=float, default=60.0)
    parser.add_argument("--ack-timeout", type=float, default=5.0)
    args = parser.parse_args()
    app = make_app(args)
    app.instantiate()
    proactor = app.proactor
    assert isinstance(proactor, ObservedProactor)
    proactor.install_ack_gate()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=read_stdin, args=(app, proactor, loop), daemon=True).start()
        watcher = loop.create_task(proactor.watch())
        report("ready", long_name=args.long_name, role=args.role, pid=os.getpid())
        try:
            await proactor.run_forever()
        finally:
            watcher.cancel()

    try:
        asyncio.run(run())
    finally:
        proactor.stop()
        report("exited")
        os._exit(0)



if __name__ == "__main__":
    main()
