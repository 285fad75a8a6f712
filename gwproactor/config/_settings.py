"""Settings of a gateway: pydantic models, loaded by :mod:`gwproactor.config._loader`.

Every number the runtime uses lives here, with its unit in the field name and a description.
Secrets are ``SecretStr`` so that they never show in logs, ``repr`` or ``/status``.

No ``from __future__ import annotations`` here: pydantic would compile and evaluate every
field's annotation string when it builds these models at import (~7 M instructions of a
gateway's start-up, issue 15); with real annotations it reads them as they are.
"""

import logging
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from gwproactor.config._paths import PathSettings
from gwproactor.store._pattern import validate_route_key
from gwproactor.store._settings import StoreSettings
from gwproactor.wire.names import validate_name

__all__ = (
    "ActorSettings",
    "BrokerSettings",
    "LinkRole",
    "LinkSettings",
    "LoggingSettings",
    "MqttProtocol",
    "ProactorSettings",
    "QOS",
    "TlsSettings",
    "WatchdogSettings",
    "WebSettings",
)

ENV_PREFIX = "GWPROACTOR_"
ENV_NESTED_DELIMITER = "__"

_log = logging.getLogger("gwproactor.config")

Name = Annotated[str, AfterValidator(lambda v: validate_name(v, "name"))]


def _type_or_pattern(value: str) -> str:
    validate_route_key(value)
    return value


TypeOrPattern = Annotated[str, AfterValidator(_type_or_pattern)]


class QOS(IntEnum):
    """MQTT quality of service."""

    AtMostOnce = 0
    AtLeastOnce = 1
    ExactlyOnce = 2


class _Model(BaseModel):
    # A typo in a config file must be an error, not a silently ignored key; so must an
    # infinite or NaN number (a timeout of "inf" would silently disable the timer).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_NAME_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_MQTT_SPECIALS = frozenset("/+#$")


def _dot_escape(value: str) -> str:
    """The escape must not collide with a character a name can hold (the mapping would not
    be reversible) nor with one MQTT gives meaning to; it must be visible ASCII."""
    if value in _NAME_ALPHABET or value in _MQTT_SPECIALS or not ("!" <= value <= "~"):
        raise ValueError(
            f"{value!r} cannot stand for '.': use one printable ASCII character that is "
            "neither in names (A-Z a-z 0-9 . _ -) nor special to MQTT (/ + # $), e.g. '~'"
        )
    return value


class TlsSettings(_Model):
    """TLS towards a broker. ``enabled`` with only ``ca_certs`` authenticates the broker;
    add ``certfile``/``keyfile`` to authenticate this gateway with a client certificate."""

    enabled: bool = False
    ca_certs: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    keyfile_password: SecretStr | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile must be given together")
        return self


MqttProtocol = Literal["3.1.1", "5"]


class BrokerSettings(_Model):
    """One MQTT broker and how to hold a connection to it."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings = TlsSettings()
    protocol: MqttProtocol = "3.1.1"
    clean_session: bool = True
    keepalive_seconds: int = Field(default=60, ge=5, description="MQTT keepalive")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="TCP+TLS+CONNACK")
    tcp_nodelay: bool = Field(default=True, description="off: Nagle meets delayed ACK (ms)")
    tcp_quickack: bool = Field(
        default=True,
        description="ACK at once after each read (Linux), so a broker that does not set "
        "TCP_NODELAY cannot stall its next small packet for our delayed ACK (~40 ms)",
    )
    reconnect_min_seconds: float = Field(default=0.25, gt=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    reconnect_jitter: float = Field(
        default=0.5, ge=0, le=1, description="fraction of each delay drawn at random"
    )
    stable_connection_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a connection must last this long to reset the reconnect backoff "
        "(one thrown out sooner, SUBACKs or not, keeps backing off)",
    )
    clash_after_drops: int = Field(
        default=3,
        ge=1,
        description="this many connections in a row lost within stable_connection_seconds "
        "are reported as a client id probably used by another process",
    )
    misc_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often paho's keepalive bookkeeping runs"
    )
    topic_dot_escape: Annotated[str, AfterValidator(_dot_escape)] | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="send '.' in gw/ topics as this character (e.g. '~') for brokers that "
        "cannot carry dots in topic levels (RabbitMQ, nats-server < 2.10); both ends of a "
        "link must agree. One printable ASCII character outside the name alphabet "
        "(A-Z a-z 0-9 . _ -) and MQTT's specials (/ + # $)",
    )
    max_inflight: int | None = Field(
        default=None,
        ge=0,
        description="paho's limit on unfinished QoS 1/2 publishes. None: MQTT 5, the "
        "broker's Receive Maximum (65,535 if its CONNACK names none); MQTT 3.1.1, 20 on a "
        "link at QoS 2 (mosquitto's default max_inflight_messages: it ignores QoS 2 "
        "publishes past it, which then never finish) and no limit at QoS 1. 0: no limit",
    )
    session_expiry_seconds: int = Field(
        default=86_400, ge=0, description="MQTT 5 persistent session lifetime (clean_session off)"
    )
    read_batch_packets: int = Field(
        default=512, ge=1, description="packets parsed per wake-up before yielding to the loop"
    )
    read_buffer_bytes: int = Field(
        default=65_536, ge=1024, description="bytes read from the socket per wake-up"
    )


LinkRole = Literal["upstream", "downstream", "peer", "admin", "broker"]
LinkCodec = Literal["native", "gwproto"]


class LinkSettings(_Model):
    """A link: a broker connection to one peer gateway, with its health state machine.

    Roles: ``upstream`` (at most one; events go there and wait for its acks), ``downstream``
    (a child gateway: its events are stored, acknowledged and forwarded upstream), ``peer``
    and ``admin`` (messages only), and ``broker``: a plain broker with no gateway behind it
    (field devices publishing raw telemetry); such a link has no peer, sends no pings and is
    active once connected and subscribed.
    """

    peer: Name | None = None
    role: LinkRole = "peer"
    codec: LinkCodec = Field(
        default="native",
        description="wire format: 'native', or 'gwproto' for gridworks-proactor 4.x peers",
    )
    short_name: Name | None = Field(
        default=None, description="gwproto: the name the peer knows this gateway by"
    )
    peer_short_name: Name | None = Field(default=None, description="gwproto: the peer's")
    broker: BrokerSettings = BrokerSettings()
    client_id: str | None = Field(default=None, description="default: <gateway>-<link>")
    qos: QOS = QOS.AtLeastOnce
    primary: bool = Field(default=False, description="the primary peer link")
    ack_timeout_seconds: float = Field(default=5.0, gt=0)
    unanswered_problem_timeouts: int = Field(
        default=3,
        ge=1,
        description="report a problem once acks stay unanswered for this many "
        "ack_timeout_seconds (the link is not active from the first timeout on)",
    )
    peer_timeout_seconds: float = Field(
        default=60.0, gt=0, description="active only if the peer was heard this recently"
    )
    poll_seconds: float = Field(
        default=20.0, gt=0, description="mqtt_link_poll_seconds: ping after this much quiet"
    )
    dedup_window: int = Field(default=4096, ge=1, description="message ids remembered")
    max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    fallback_brokers: list[BrokerSettings] = Field(
        default=[], description="brokers to fail over to, in order of preference"
    )
    failover_after_seconds: float = Field(
        default=10.0, gt=0, description="move to the next broker after this long unreachable"
    )
    failback_check_seconds: float = Field(
        default=30.0, gt=0, description="how often a fallback link probes the preferred broker"
    )
    presence: bool = Field(
        default=True,
        description="retained online status on connect, offline will and stop (default "
        "off on gwproto links, which cannot have it)",
    )

    @model_validator(mode="before")
    @classmethod
    def _gwproto_defaults(cls, data: Any) -> Any:
        # A 4.x peer publishes and subscribes at QoS 0 and knows no presence topic.
        if isinstance(data, dict) and data.get("codec") == "gwproto":
            data = dict(data)
            data.setdefault("qos", QOS.AtMostOnce)
            data.setdefault("presence", False)
        return data

    @model_validator(mode="after")
    def _peer_unless_broker(self) -> Self:
        if self.role != "broker" and self.peer is None:
            raise ValueError(f"a link with role {self.role!r} needs a peer")
        if self.role == "broker" and self.peer is not None:
            raise ValueError("a link with role 'broker' has no peer")
        if self.codec == "gwproto":
            self._check_gwproto()
        elif self.short_name is not None or self.peer_short_name is not None:
            raise ValueError("short_name and peer_short_name are for codec = 'gwproto' links")
        return self

    def _check_gwproto(self) -> None:
        if self.role in ("broker", "admin"):
            raise ValueError(f"a gwproto link cannot have role {self.role!r}")
        missing = [k for k in ("short_name", "peer_short_name") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"a gwproto link needs {' and '.join(missing)} (the short names the 4.x "
                "gateways use in topics: short_name is ours, peer_short_name the peer's)"
            )
        for key in ("peer", "short_name", "peer_short_name"):
            value = getattr(self, key)
            if value is not None and "-" in value:
                raise ValueError(
                    f"{key} {value!r} contains '-': gwproto writes '.' as '-' in topics and "
                    "turns every '-' back into '.', so a 4.x peer cannot carry it"
                )
        if self.presence:
            raise ValueError("presence (birth and will) is not possible on a gwproto link")
        brokers = [self.broker, *self.fallback_brokers]
        if any(b.topic_dot_escape is not None for b in brokers):
            raise ValueError(
                "broker.topic_dot_escape does not apply to a gwproto link (gwproto writes "
                "'.' as '-' itself)"
            )

    @property
    def uses_presence(self) -> bool:
        return self.presence and self.role != "broker"


class ActorSettings(_Model):
    """An actor to load: ``cls`` is ``package.module:ClassName``."""

    cls: str = Field(alias="class")
    handles: list[TypeOrPattern] = Field(
        default=[],
        description="message types (or patterns: site.*, gw.?.state) routed to this actor",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the actor's own")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class LoggingSettings(_Model):
    level: LogLevel = "INFO"
    message_summary_level: LogLevel = "WARNING"
    lifecycle_level: LogLevel = "INFO"
    comm_event_level: LogLevel = "INFO"
    format: Literal["auto", "rich", "plain", "journal", "json"] = Field(
        default="auto",
        description="console format; auto: rich on a terminal, journal under systemd "
        "(JOURNAL_STREAM is stdout), plain otherwise",
    )
    file_enabled: bool | None = Field(
        default=None, description="the rotating file log; unset: on, except under systemd"
    )
    file_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    file_backup_count: int = Field(default=5, ge=0)


class WatchdogSettings(_Model):
    check_interval_seconds: float = Field(default=1.0, gt=0)
    loop_timeout_seconds: float = Field(default=10.0, gt=0)
    spin_polls_per_second: float = Field(
        default=10_000.0,
        gt=0,
        description="idle polls per second (ready work, no socket ready) above which the "
        "loop counts as spinning; a working loop makes a few thousand iterations a second",
    )
    spin_seconds: float = Field(
        default=10.0, gt=0, description="how long a spin lasts before the watchdog reports it"
    )
    external_command: list[str] = Field(
        default=[], description="a custom pat command (argv), run off the loop"
    )
    external_interval_seconds: float = Field(
        default=10.0, gt=0, description="how often external_command runs while all is well"
    )
    external_timeout_seconds: float = Field(
        default=5.0, gt=0, description="bound on one run of external_command"
    )
    systemd_notify: bool = Field(
        default=True, description="speak sd_notify (READY/STATUS/WATCHDOG) when NOTIFY_SOCKET"
    )


class WebSettings(_Model):
    enabled: bool = False
    host: str = Field(default="127.0.0.1", description="loopback unless you mean otherwise")
    port: int = Field(default=8080, ge=0, le=65535)
    token: SecretStr | None = Field(default=None, description="bearer token, mutating routes")
    status_refresh_seconds: float = Field(default=2.0, gt=0)
    history_sample_seconds: float = Field(
        default=10.0, ge=1, description="backlog sample period of the page's last-hour sparkline"
    )
    recent_log_size: int = Field(
        default=50, ge=1, le=1000, description="WARNING+ log records the page and /status show"
    )


RESERVED_ACTOR_NAMES = frozenset({"admin"})
"""Communicator names the gateway uses itself (the admin link's commander is ``admin``)."""


class ProactorSettings(BaseModel):
    """Everything a gateway needs. Load with :func:`gwproactor.config.load_settings`, which
    reads with pydantic-settings' sources, in rising precedence: defaults, the config file
    (TOML), the ``.env`` file, the environment (``GWPROACTOR_`` prefix, ``__`` between nested
    names), explicit arguments. Constructing it directly reads no environment.

    (A plain model rather than a ``BaseSettings``: importing pydantic-settings costs about
    a third of a second here, which a gateway configured in code need not pay. The loader
    imports it when it reads sources.)
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    # The reference kept these in a nested ``Config``; here they describe what
    # load_settings reads (the class itself reads no environment).
    env_prefix: ClassVar[str] = ENV_PREFIX
    env_nested_delimiter: ClassVar[str] = ENV_NESTED_DELIMITER

    name: Name = "gateway"
    links: dict[Name, LinkSettings] = Field(default_factory=dict)
    ack_timeout_seconds: float = Field(
        default=5.0, gt=0, description="the ack timeout of every link that sets none"
    )
    actors: dict[Name, ActorSettings] = Field(default_factory=dict)
    paths: PathSettings = PathSettings()
    logging: LoggingSettings = LoggingSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    web: WebSettings = WebSettings()
    receive_queue_max: int = Field(
        default=10_000, ge=2, description="above this, links stop reading their sockets"
    )
    receive_queue_resume_fraction: float = Field(default=0.5, gt=0, lt=1)
    dispatch_batch: int = Field(
        default=256, ge=1, description="messages dispatched per wake-up before yielding"
    )
    stop_timeout_seconds: float = Field(default=5.0, gt=0, description="bound on each join")
    problem_report_interval_seconds: float = Field(
        default=10.0, ge=0, description="same problem reported at most this often"
    )
    event_upload_window: int = Field(
        default=200,
        ge=1,
        description="events in flight upstream at once, live ones and a backlog alike; "
        "each ack releases the next. On a slow path, no more than the upstream connection's "
        "in-flight limit (MQTT 5: the broker's Receive Maximum; broker.max_inflight) lets "
        "out within a quarter of the ack timeout",
    )
    num_initial_event_reuploads: int | None = Field(
        default=None,
        ge=1,
        exclude=True,
        description="deprecated name of event_upload_window (a warning is logged): it was "
        "never about the first re-uploads only. Reads give event_upload_window",
    )
    event_read_batch: int = Field(default=1000, ge=1, description="backlog events per read")
    reupload_log_threshold: int = Field(
        default=500,
        ge=1,
        description="a backlog this large is logged while it drains (progress, then a summary)",
    )
    reupload_log_every: int = Field(
        default=1000, ge=1, description="acks between progress lines while a backlog drains"
    )
    max_uncommitted_events: int = Field(
        default=50_000,
        ge=1,
        description="generate_event refuses (Err) beyond this many events awaiting commit",
    )
    max_received_uncommitted: int = Field(
        default=5_000,
        ge=1,
        description=(
            "a link stops reading while this many events it received await their commit "
            "(resumes at receive_queue_resume_fraction of it)"
        ),
    )
    store: StoreSettings = StoreSettings()
    forward_events: bool = Field(
        default=True, description="forward events from downstream links upstream"
    )

    @model_validator(mode="after")
    def _deprecated_names(self) -> Self:
        old = self.num_initial_event_reuploads
        if old is not None and "num_initial_event_reuploads" in self.model_fields_set:
            if "event_upload_window" in self.model_fields_set:
                _log.warning(
                    "settings: num_initial_event_reuploads (deprecated) is ignored: "
                    "event_upload_window is set too"
                )
            else:
                _log.warning(
                    "settings: num_initial_event_reuploads is deprecated; it sets "
                    "event_upload_window (the upload window for every event): rename it"
                )
                self.event_upload_window = old
        # The old name reads as the new one (code written against the old name).
        self.num_initial_event_reuploads = self.event_upload_window
        self.model_fields_set.discard("num_initial_event_reuploads")
        return self

    @model_validator(mode="after")
    def _link_defaults(self) -> Self:
        # A link that sets no ack timeout of its own takes the gateway's (a copy: the
        # caller's LinkSettings may be shared with other gateways).
        self.links = {
            name: link
            if "ack_timeout_seconds" in link.model_fields_set
            or link.ack_timeout_seconds == self.ack_timeout_seconds
            else link.model_copy(update={"ack_timeout_seconds": self.ack_timeout_seconds})
            for name, link in self.links.items()
        }
        return self

    @model_validator(mode="after")
    def _links_consistent(self) -> Self:
        upstream = [n for n, link in self.links.items() if link.role == "upstream"]
        if len(upstream) > 1:
            raise ValueError(f"at most one upstream link, got {upstream}")
        clash = set(self.links) & set(self.actors)
        if clash:
            raise ValueError(f"links and actors share names: {sorted(clash)}")
        reserved = set(self.actors) & RESERVED_ACTOR_NAMES
        if reserved:
            raise ValueError(
                f"actor name(s) {sorted(reserved)} are reserved for the gateway's own "
                "communicators (the admin commander); rename the actor"
            )
        gwproto = [n for n, link in self.links.items() if link.codec == "gwproto"]
        if gwproto and "-" in self.name:
            raise ValueError(
                f"name {self.name!r} contains '-', which the gwproto link(s) {gwproto} cannot "
                "carry (4.x gateways turn every '-' in a topic back into '.')"
            )
        return self

    @property
    def upstream_link(self) -> str | None:
        return next((n for n, link in self.links.items() if link.role == "upstream"), None)
