"""paho-mqtt 2.x driven from the asyncio event loop: one connection that keeps itself up.

The loop watches the client's socket and runs paho's keepalive on a timer
(:class:`~gwproactor.mqtt._loop_io.LoopIO`), so every paho callback runs on the loop thread
and nothing of ours is shared with another thread. The one exception is the blocking part
of connecting (DNS, TCP, TLS handshake, writing CONNECT), which runs in an executor thread
while the loop leaves the client alone (the client is not ``connected`` then, so nothing
publishes on it). This module owns the connection's life: connect, CONNACK, subscriptions
and their SUBACKs, reconnects with backoff, and failover between brokers.

paho is imported here, in :mod:`gwproactor.mqtt._buffered` (the client itself and its
construction) and in :mod:`gwproactor.mqtt._paho` (the one door to paho's private parts).
A received message becomes ``(topic, payload)`` at once and goes to the
:class:`~gwproactor.mqtt._types.TransportListener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from paho.mqtt.client import (
    MQTT_CLEAN_START_FIRST_ONLY,
    Client,
    ConnectFlags,
    DisconnectFlags,
)
from paho.mqtt.enums import LogLevel, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gwproactor.config import QOS, BrokerSettings
from gwproactor.mqtt._buffered import (
    QOS2_MAX_INFLIGHT,
    RECEIVE_MAXIMUM_ABSENT,
    BufferedClient,
    new_client,
)
from gwproactor.mqtt._failover import BrokerSelector, probe_broker
from gwproactor.mqtt._loop_io import LoopIO
from gwproactor.mqtt._reference_forms import QueueListener, WrapperReferenceForms
from gwproactor.mqtt._types import Backoff, TransportListener
from gwproactor.observe.stats import LinkStats
from gwproactor.wire.message import RawMessage

__all__ = ("MQTTClientWrapper",)

_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
_TOPIC_CACHE_SIZE = 4096


class MQTTClientWrapper(WrapperReferenceForms):
    """One MQTT connection that keeps itself up, on the event loop.

    Lifecycle: construct (cheap, no I/O) → :meth:`start` (on the loop; begins connecting) →
    :meth:`stop` (await; disconnects, bounded). After a disconnect it reconnects with capped
    exponential backoff and jitter, and re-sends every subscription, one SUBSCRIBE per topic
    so that each SUBACK is tracked by its packet id. Loop-only except where marked.
    """

    def __init__(
        self,
        name: str,
        settings: BrokerSettings,
        client_id: str | asyncio.Queue[RawMessage],
        listener: TransportListener | None = None,
        *,
        fallback_brokers: Sequence[BrokerSettings] = (),
        failover_after_seconds: float = 10.0,
        failback_check_seconds: float = 30.0,
        will: tuple[str, bytes] | None = None,
        qos: QOS = QOS.AtLeastOnce,
        executor: Executor | None = None,
        stats: LinkStats | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if isinstance(client_id, asyncio.Queue):  # the reference's (name, config, queue)
            listener, client_id = QueueListener(name, client_id), name
        if listener is None:
            raise TypeError(f"MQTT client {name}: give a listener (or a receive queue)")
        self.name = name
        self._paho_logger: logging.Logger | None = None
        self._selector = BrokerSelector([settings, *fallback_brokers], failover_after_seconds)
        self.failback_check_seconds = failback_check_seconds
        self._will = will
        self.qos = qos  # the link's: sets paho's in-flight limit on MQTT 3.1.1
        self.client_id = client_id
        self._listener = listener
        self._executor = executor
        self.stats = stats or LinkStats(name)
        self._log = logger or logging.getLogger(f"gwproactor.mqtt.{name}")
        self._subscriptions: dict[str, QOS] = {}  # as the link names them (unescaped)
        self._qos0_topics: dict[str, bytes] = {}  # topic → as sent to the broker in use
        self._pending_subacks: dict[int, str] = {}
        self._backoff = Backoff(
            settings.reconnect_min_seconds,
            settings.reconnect_max_seconds,
            settings.reconnect_jitter,
        )
        self._io = LoopIO(settings, listener.on_transport_read_done)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._connack: asyncio.Future[bool] | None = None
        self._lost: asyncio.Event | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ever_connected = False
        self._good_connection = False
        self.last_error = ""
        self._connect_error = ""
        self._attempt_reported = False
        self._switch_now = False
        self._connected_since = 0.0
        self._short_connections = 0  # in a row, each lost within stable_connection_seconds
        self._clash_reported = False
        self._failback_task: asyncio.Task[None] | None = None

    @property
    def _client(self) -> BufferedClient | None:
        """The current paho client (a new one per broker: TLS and credentials differ)."""
        return self._io.client

    @_client.setter
    def _client(self, client: BufferedClient | None) -> None:
        self._io.client = client

    # -- public, loop-only ----------------------------------------------------------------

    @property
    def settings(self) -> BrokerSettings:
        """The broker in use now (the preferred one unless failed over)."""
        return self._selector.current

    def connected(self) -> bool:
        """Whether the connection is up (CONNACK accepted, not lost since)."""
        return self._connected

    @property
    def backoff_steps(self) -> int:
        """Reconnect delays taken since the backoff was last reset (by a stable connection)."""
        return self._backoff.failures

    @property
    def broker_label(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def subscriptions(self) -> dict[str, QOS]:
        return dict(self._subscriptions)

    @property
    def inflight_limit(self) -> int:
        """paho's limit on unfinished QoS 1/2 publishes (0: none); past it paho queues
        them. Set at CONNACK (:meth:`_inflight_limit`) unless ``max_inflight`` is
        configured; before the first CONNACK of a client it is paho's default."""
        client = self._client
        return 0 if client is None else client.max_inflight_messages

    @property
    def all_subscribed(self) -> bool:
        return self._connected and not self._pending_subacks

    def use_executor(self, executor: Executor) -> None:
        """Run the blocking connects (and failback probes) in ``executor``; before
        :meth:`start`."""
        self._executor = executor

    def start(self) -> None:
        """Begin connecting (and keep the connection up) as a task on the running loop."""
        if self._task is not None:
            return
        self._loop = self._io.loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._client = self._make_client()
        self._task = self._loop.create_task(self._run(), name=f"link[{self.name}].mqtt")

    def stop(self, timeout: float = 5.0) -> asyncio.Task[None]:
        """Disconnect and stop reconnecting, as a task: ``await stop()`` returns within
        about ``timeout`` (a connect stuck in the executor is abandoned after that, its
        socket closed); a plain ``stop()`` (the reference's form) begins the same. Loop;
        idempotent."""
        loop = asyncio.get_running_loop()
        return loop.create_task(self._stop(timeout), name=f"link[{self.name}].mqtt.stop")

    async def _stop(self, timeout: float) -> None:
        task = self._task
        if task is None or self._stop_requested is None:
            return
        self._stop_requested.set()
        self._cancel_failback()
        connack = self._connack
        if connack is not None and not connack.done():
            # Waiting for a CONNACK that no longer matters: give it up now (stopping is not
            # a failed attempt, so nothing is reported).
            self._attempt_reported = True
            connack.set_result(False)
        if self._connected and self._client is not None:
            self._client.disconnect()
            self._io.after_io()
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=timeout)
        self._teardown_socket()

    def subscribe(self, topic: str, qos: QOS) -> tuple[int, int | None]:
        """Remember ``topic`` and subscribe now if connected; it is restored after every
        reconnect. The SUBACK reaches the listener's ``on_transport_suback``. Returns
        paho's ``(rc, mid)`` of the SUBSCRIBE sent now, or ``(MQTT_ERR_NO_CONN, None)``
        when not connected (it is sent on connect)."""
        self._subscriptions[topic] = qos
        if self._connected:
            return self._send_subscribe(topic, qos)
        return int(MQTTErrorCode.MQTT_ERR_NO_CONN), None

    def unsubscribe(self, topic: str) -> tuple[int, int | None]:
        """Forget ``topic``; returns paho's ``(rc, mid)`` of the UNSUBSCRIBE sent, or
        ``(MQTT_ERR_NO_CONN, None)`` when not connected or not subscribed."""
        no_conn = int(MQTTErrorCode.MQTT_ERR_NO_CONN), None
        if self._subscriptions.pop(topic, None) is None:
            return no_conn
        self._pending_subacks = {m: t for m, t in self._pending_subacks.items() if t != topic}
        if self._connected and self._client is not None:
            rc, mid = self._client.unsubscribe(self._wire(topic))
            self._io.after_io()
            return int(rc), mid
        return no_conn

    def publish(self, topic: str, payload: bytes, qos: QOS, retain: bool = False) -> bool:
        """Queue a PUBLISH (written at once when the socket takes it). False if not
        connected or paho refused it; the caller decides what that means."""
        client = self._client
        if not self._connected or client is None:
            return False
        if qos == 0 and not retain:
            wire = self._qos0_topics.get(topic)
            if wire is None:
                wire = self._qos0_topic(topic)
            if wire and client.publish_qos0(wire, payload):
                return True
        info = client.publish(self._wire(topic), payload, qos, retain)
        if client.want_write():  # paho wrote what it could; watch for writability if not all
            self._io.want_write()
        return info.rc == _SUCCESS

    def pause_reading(self) -> None:
        """Stop reading the socket (backpressure: TCP then pushes back to the broker)."""
        self._io.pause_reading()

    def resume_reading(self) -> None:
        if self._connected:
            self._io.resume_reading()
        else:
            self._io.reading_paused = False

    def request_reconnect(self) -> None:
        """Drop the current connection (the run loop reconnects). Used by failover and
        by tests of recovery."""
        if self._client is not None and self._connected:
            self._client.disconnect()
            self._io.after_io()

    # -- the connection task ----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._lost is not None and self._stop_requested is not None
        while not self._stop_requested.is_set():
            self._lost.clear()
            if await self._connect_once():
                stop_wait = asyncio.ensure_future(self._stop_requested.wait())
                lost_wait = asyncio.ensure_future(self._lost.wait())
                try:
                    await asyncio.wait({stop_wait, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop_wait.cancel()
                    lost_wait.cancel()
                self._cancel_failback()
                self._judge_connection()
            elif not self._stop_requested.is_set() and self._selector.failed():
                self._use_broker(self._selector.index)
            if self._stop_requested.is_set():
                break
            if self._switch_now:
                self._switch_now = False
                continue
            delay = self._backoff.next_delay()
            self._log.debug("reconnecting to %s in %.2f s", self.broker_label, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)

    def _judge_connection(self) -> None:
        """After a connection ended: reset the backoff only if it lasted; count the ones
        thrown out soon after they were made. Several in a row is what a broker does to two
        clients with the same id (each CONNECT takes the session over from the other), and
        resetting the backoff then would make both reconnect every 0.25 s for ever."""
        assert self._loop is not None and self._stop_requested is not None
        if self._stop_requested.is_set() or self._switch_now:
            return  # ended on purpose
        lived = self._loop.time() - self._connected_since
        if lived >= self.settings.stable_connection_seconds:
            if self._good_connection:
                self._backoff.reset()
            if self._clash_reported:
                self._log.warning("link %s: connections are stable again", self.name)
            self._short_connections = 0
            self._clash_reported = False
            return
        self._short_connections += 1
        self.stats.short_connections += 1
        if self._short_connections >= self.settings.clash_after_drops and not self._clash_reported:
            self._clash_reported = True
            self._listener.on_transport_problem(
                "client_id_clash",
                f"client id {self.client_id} is probably used by another process: "
                f"{self._short_connections} connections in a row to {self.broker_label} "
                f"lost within {self.settings.stable_connection_seconds:g} s (last: "
                f"{self.last_error or 'closed'}); backing off",
            )

    async def _connect_once(self) -> bool:
        """One attempt: connect in the executor, then await CONNACK on the loop. Every
        failed attempt is reported exactly once through ``_connect_failed``."""
        assert self._loop is not None and self._client is not None
        client = self._client
        self._connack = self._loop.create_future()
        self._good_connection = False
        self._connect_error = ""
        self._attempt_reported = False
        # Until CONNACK: keep paho from writing in the executor thread (a write error there
        # would run our callbacks off the loop), and keep its error log lines for the report.
        client.on_log = self._on_connect_log
        try:
            accepted = await self._connect_and_wait(client)
        finally:
            client.on_log = None
        if not accepted:
            if not self._attempt_reported:
                self._connect_failed(self._connect_error or "closed before CONNACK")
            self._teardown_socket()
            return False
        self._selector.connected()
        if not self._selector.on_preferred and self._loop is not None:
            self._failback_task = self._loop.create_task(
                self._failback(), name=f"link[{self.name}].failback"
            )
        return True

    # -- failover -------------------------------------------------------------------------

    def _use_broker(self, index: int) -> None:
        """Switch to broker ``index`` (the connection is already gone): a new paho client,
        since TLS and credentials may differ per broker."""
        if index != self._selector.index:
            self._selector.move_to(index)
        self._client = self._make_client()
        self._qos0_topics.clear()  # the new broker may escape topics differently
        self._backoff.reset()
        self.stats.broker_switches += 1
        self._log.warning("link %s now uses broker %s", self.name, self.broker_label)
        self._listener.on_transport_broker_changed(self.broker_label)

    async def _failback(self) -> None:
        """While on a fallback broker: probe the preferred one now and then with a separate
        connection; once it answers, reconnect there."""
        assert self._loop is not None
        preferred = self._selector.brokers[0]
        while self._connected:
            await asyncio.sleep(self.failback_check_seconds)  # the probe period itself
            try:
                healthy = await self._loop.run_in_executor(
                    self._executor, probe_broker, preferred, f"{self.client_id}-probe"
                )
            except Exception as e:  # noqa: BLE001 - the task must outlive a bad probe
                # Building the probe client raised (TLS files removed while running, say):
                # report it (rate-limited by the owner) and probe again next interval.
                self._log.debug("failback probe of %s failed", preferred.host, exc_info=True)
                self._listener.on_transport_problem(
                    "failback_probe",
                    f"cannot probe the preferred broker {preferred.host}:{preferred.port}: "
                    f"{type(e).__name__}: {e}; trying again in {self.failback_check_seconds:g} s",
                )
                continue
            if healthy and self._connected:
                self._log.info("preferred broker %s:%s is back", preferred.host, preferred.port)
                self._selector.move_to(0)
                self._switch_now = True
                self._failback_task = None
                self.request_reconnect()
                self._use_broker(0)
                return

    def _cancel_failback(self) -> None:
        task, self._failback_task = self._failback_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _connect_and_wait(self, client: BufferedClient) -> bool:
        assert self._loop is not None and self._connack is not None
        settings = self.settings
        client.on_socket_register_write = _ignore_socket
        try:
            await self._loop.run_in_executor(self._executor, self._ext_connect, client)
        except (OSError, ssl.SSLError, ValueError) as e:
            self._connect_error = f"{type(e).__name__}: {e}"
            return False
        finally:
            client.on_socket_register_write = None
        if client.socket() is None:
            return False
        self._io.attach(client, settings)
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._connack), settings.connect_timeout_seconds
            )
        except TimeoutError:
            self._connect_error = f"no CONNACK within {settings.connect_timeout_seconds} s"
            return False

    def _on_connect_log(self, _client: Client, _userdata: Any, level: int, text: str) -> None:
        if level in (LogLevel.MQTT_LOG_ERR, LogLevel.MQTT_LOG_WARNING):
            self._connect_error = text

    def _ext_connect(self, client: Client) -> None:
        """Runs in an executor thread: the blocking TCP connect, TLS handshake, CONNECT."""
        settings = self.settings
        properties: Properties | None = None
        if settings.protocol == "5":
            clean_start: Any = bool(settings.clean_session)
            if not settings.clean_session:
                # Without an expiry interval an MQTT 5 session ends with the connection.
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = settings.session_expiry_seconds
        else:
            clean_start = MQTT_CLEAN_START_FIRST_ONLY  # 3.1.1: set on the client instead
        client.connect(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_seconds,
            clean_start=clean_start,
            properties=properties,
        )

    def _connect_failed(self, reason: str) -> None:
        self._attempt_reported = True
        self.stats.connect_failures += 1
        self.last_error = reason
        # Every attempt while the broker is away: DEBUG. The owner reports it as a problem,
        # rate-limited ("cannot connect ... (+N similar since last report)").
        self._log.debug("connect to %s failed: %s", self.broker_label, reason)
        self._listener.on_transport_connect_failed(reason)

    # -- paho callbacks (all on the loop) -----------------------------------------------------

    def _on_connect(
        self,
        client: Client,
        _userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connack = self._connack
        if reason_code.is_failure:
            self._connect_failed(f"CONNACK refused: {reason_code}")
            if connack is not None and not connack.done():
                connack.set_result(False)
            return
        # paho would now re-send QoS 1 publishes the last connection left unacknowledged,
        # ahead of anything else. For events that breaks order (the uploader re-sends them,
        # oldest first, once the link is active again), and other gw messages are not
        # promised to survive a reconnect: drop them. Events stay safe in the store.
        dropped = client.drop_out_messages()
        if dropped:
            self._log.debug(
                "dropped %d unacknowledged publishes of the last connection", len(dropped)
            )
        if self.settings.max_inflight is None and isinstance(client, BufferedClient):
            client.limit_inflight(self._inflight_limit(properties))
        self._connected = True
        self._connected_since = self._loop.time() if self._loop is not None else 0.0
        self.stats.connects += 1
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self.last_error = ""
        self._pending_subacks.clear()
        for topic, qos in self._subscriptions.items():
            self._send_subscribe(topic, qos)
        if not self._subscriptions:
            self._good_connection = True
        if connack is not None and not connack.done():
            connack.set_result(True)
        self._listener.on_transport_connected()

    def _inflight_limit(self, connack: Properties | None) -> int:
        """MQTT 5: the broker's Receive Maximum (more unfinished publishes than that is a
        protocol error; mosquitto silently ignores the QoS 2 ones). MQTT 3.1.1 names no
        limit: 20 for a QoS 2 link (mosquitto's default), none at QoS 1, where a limit would
        only hold events back while their ack timers run."""
        if self.settings.protocol == "5":
            return int(getattr(connack, "ReceiveMaximum", RECEIVE_MAXIMUM_ABSENT))
        return QOS2_MAX_INFLIGHT if self.qos >= QOS.ExactlyOnce else 0

    def _on_disconnect(
        self,
        client: Client,
        _userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        reason = _disconnect_reason(client, flags, reason_code)
        was_connected = self._connected
        self._connected = False
        self._pending_subacks.clear()
        self._io.detach()
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(False)
        if self._lost is not None:
            self._lost.set()
        if was_connected:
            self.stats.disconnects += 1
            self.last_error = reason
            self._listener.on_transport_disconnected(reason)

    def _on_subscribe(
        self,
        _client: Client,
        _userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        topic = self._pending_subacks.pop(mid, None)
        if topic is None:  # an unsubscribed topic's late SUBACK
            return
        granted = bool(reason_codes) and not reason_codes[0].is_failure
        if not granted:
            self.stats.subscription_failures += 1
            self._log.warning("broker refused subscription %s: %s", topic, reason_codes)
        if not self._pending_subacks:
            self._good_connection = True
        self._listener.on_transport_suback(topic, granted)

    def _on_socket_close(self, _client: Client, _userdata: Any, _sock: Any) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread_id():
            self._loop.call_soon_threadsafe(self._io.forget_fds)
        else:
            self._io.forget_fds()

    # -- the socket ----------------------------------------------------------------------------

    def _teardown_socket(self) -> None:
        """Close whatever socket paho holds without waiting for the broker."""
        self._io.close()
        self._connected = False

    def _qos0_topic(self, topic: str) -> bytes:
        """The topic's bytes for :meth:`BufferedClient.publish_qos0`, or b"" when it is not
        a valid topic name (paho's ``publish`` then says why). Cached, bounded."""
        wire = self._wire(topic).encode()
        if not 0 < len(wire) <= 65535 or b"+" in wire or b"#" in wire or b"\0" in wire:
            wire = b""
        if len(self._qos0_topics) >= _TOPIC_CACHE_SIZE:
            self._qos0_topics.clear()
        self._qos0_topics[topic] = wire
        return wire

    def _wire(self, topic: str) -> str:
        """The topic as sent to this broker (dots escaped in gw/ topics if configured)."""
        escape = self.settings.topic_dot_escape
        if escape is None or not topic.startswith("gw/"):
            return topic
        return topic.replace(".", escape)

    def _send_subscribe(self, topic: str, qos: QOS) -> tuple[int, int | None]:
        assert self._client is not None
        rc, mid = self._client.subscribe(self._wire(topic), int(qos))
        if rc == _SUCCESS and mid is not None:
            self._pending_subacks[mid] = topic
            self._good_connection = False
        else:
            self.stats.subscription_failures += 1
            self._log.warning("subscribe %s failed locally: rc %s", topic, rc)
        self._io.after_io()
        return int(rc), mid

    def _loop_thread_id(self) -> int:
        return self._thread_id

    def _make_client(self) -> BufferedClient:
        will = None
        if self._will is not None:
            will = (self._wire(self._will[0]), self._will[1])
        client = new_client(
            self.settings, self.client_id, will, self._listener.on_transport_message
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_socket_close = self._on_socket_close
        if self._paho_logger is not None:
            client.enable_logger(self._paho_logger)
        self._thread_id = threading.get_ident()
        return client


def _disconnect_reason(client: Client, flags: DisconnectFlags, reason_code: ReasonCode) -> str:
    """What ended a connection, for the log and /status. paho names a lost connection
    "Unspecified error"; say what the read side saw instead."""
    if flags.is_disconnect_packet_from_server:
        return f"DISCONNECT from the broker: {reason_code}"
    lost = client.lost_reason if isinstance(client, BufferedClient) else ""
    if reason_code.is_failure and lost:
        return f"connection lost: {lost}"
    return str(reason_code)


def _ignore_socket(_client: Client, _userdata: Any, _sock: Any) -> None:
    """A register-write callback that does nothing (see ``_connect_once``)."""
