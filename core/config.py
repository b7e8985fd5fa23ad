"""One settings object for every command: env prefix ``IOT_``, ``.env`` supported, secrets also
from files in ``IOT_SECRETS_DIR`` (the sources: :mod:`core.settings_sources`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator

from core.settings_sources import NoDecode, gather

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
PACKET_HEADER_ALLOWANCE = 128 * 1024  # bytes of an MQTT packet besides its payload (topic, id, properties)
DEFAULT_MAX_PACKET_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + PACKET_HEADER_ALLOWANCE
EMBEDDED_REGISTRY_FILE = "registry.sqlite3"  # the registry under data_dir when IOT_REGISTRY_URL is empty


class Settings(BaseModel):
    """``Settings(**values)`` lays ``values`` over the environment, ``.env`` (``_env_file=None``: none)
    and the files in ``_secrets_dir`` (:func:`core.settings_sources.gather`), then validates."""

    model_config = ConfigDict(extra="ignore", validate_default=True, defer_build=True)  # built below

    if not TYPE_CHECKING:  # mypy checks Settings(field=...) against the fields (the pydantic plugin)

        def __init__(self, **values: Any) -> None:
            super().__init__(**gather(type(self).model_fields, values))

    data_dir: Path = Path(".iot-data")
    broker_url: str = "embedded"
    timeseries_url: str = "embedded"
    documents_url: str = "embedded"
    registry_url: str = ""  # empty: SQLite file under data_dir

    # secrets: no defaults, never printed (SecretStr hides them in repr)
    influxdb_token: SecretStr | None = None
    influxdb_password: SecretStr | None = None  # influxdb1:// URLs with a user and no password
    mongodb_password: SecretStr | None = None  # mongodb:// URLs with a user and no password
    broker_password: SecretStr | None = None
    api_key: SecretStr | None = None
    registry_password: SecretStr | None = None  # for IOT_REGISTRY_URL with a user and no password
    # notification secrets by name (HMAC keys, SMTP passwords, Slack webhook URLs):
    # IOT_NOTIFY_SECRETS='{"ops-hook": "…"}' or a file iot_notify_secrets in IOT_SECRETS_DIR
    notify_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    embedded_broker_port: int = Field(1883, ge=1, le=65535)
    client_id: str = "iot-ingest"
    topic_root: str = "devices"
    mappings: Path | None = Field(
        None, description="TOML file of topic mappings and firmware presets (README 'Bringing existing devices')"
    )
    batch_size: int = Field(5000, ge=1)
    flush_interval: float = Field(1.0, gt=0)
    flush_idle: float = Field(
        0.1,
        ge=0,
        description="buffered batches are written once nothing has been received for this long (0: only"
        " IOT_FLUSH_INTERVAL and IOT_BATCH_SIZE); the end of a burst lands at once",
    )
    receive_maximum: int = Field(20000, ge=1, le=65535)
    keepalive: int = Field(30, ge=5)
    workers: int = Field(1, ge=1, le=64, description="daemon processes joined by an MQTT shared subscription")
    broker_accounts: Literal["own", "shared"] = Field(
        "own",
        description="--workers N: own: worker k and the alert evaluator connect as accounts of their own,"
        " {user}-k and {user}-alerts of IOT_BROKER_URL's user, passwords derived from IOT_BROKER_PASSWORD (what"
        " `iot registry export-mosquitto --workers N` writes; needed where the broker binds client ids to"
        " usernames); shared: all on IOT_BROKER_URL's account",
    )
    broker_account: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]{0,16}$",
        description="this process connects as {user}-<this> of IOT_BROKER_URL's user (set per worker by --workers)",
    )
    supervisor_pid: int = Field(
        0, ge=0, description="set per worker by --workers: the worker stops once this process is no longer its parent"
    )
    share_group: str = Field("", description="MQTT 5 shared subscription group ($share/<group>/...); set per worker")
    role: Literal["all", "ingest", "alerts"] = Field(
        "all",
        description="all: store and evaluate alerts (one process); ingest: store only (a worker of several); "
        "alerts: evaluate alerts only, on its own subscription (the evaluator of several workers)",
    )
    mqtt_client: Literal["native", "paho"] = Field(
        "native", description="receive path: the project's own MQTT session, or paho (fallback)"
    )
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    # cardinality (README "Security: data path"): per message, and per device per window
    max_fields_per_message: int = Field(256, ge=1)
    max_units_per_message: int = Field(16, ge=1)
    max_new_fields_per_device: int = Field(100, ge=1, description="new field names a device may add per window")
    max_new_units_per_device: int = Field(16, ge=1, description="new unit tag values a device may add per window")
    cardinality_window: float = Field(3600.0, gt=0, description="seconds")
    future_window: float = Field(300.0, ge=0, description="seconds a timestamp may lie ahead")
    unknown_devices: Literal["accept", "reject", "register"] = "register"
    registry_refresh: float = Field(30.0, gt=0)
    spool_dir: Path | None = None  # default: data_dir / "spool"
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20)
    metrics_port: int = Field(9108, ge=0, le=65535, description="/metrics and /healthz; 0: none")
    metrics_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = Field("text", description="daemon logs: text, or JSON lines")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_repeat_interval: float = Field(
        30.0, ge=0, description="a repeated warning is logged at most once per this many seconds (0: all)"
    )
    offline_check_interval: float = Field(5.0, gt=0)
    # MongoDB write concern: acknowledged only once journaled (a standalone mongod acknowledges
    # w:1 from memory otherwise); "majority" for replica sets
    mongodb_w: str = Field("1", pattern=r"^(majority|[1-9][0-9]*)$")
    mongodb_journal: bool = True
    # Sparkplug B host application (README "Sparkplug B")
    sparkplug: bool = Field(False, description="ingest spBv1.0/ (Sparkplug B) besides the topic root")
    sparkplug_host_id: str = Field(
        "iot-ingest", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="this host application's id: spBv1.0/STATE/<id>"
    )
    sparkplug_broker_url: str | None = Field(
        None,
        description="the Sparkplug host's own broker account (STATE, rebirth requests), e.g. mqtt://iot-host@broker:1883;"
        " default the daemon's IOT_BROKER_URL. Needed where the broker sets use_username_as_clientid (the exported"
        " listener config): on the daemon's account the host would take over the daemon's session",
    )
    sparkplug_broker_password: SecretStr | None = Field(None, description="its password (a secret)")
    sparkplug_rebirth_interval: float = Field(30.0, gt=0, description="seconds between rebirth requests to one node")
    sparkplug_reorder_wait: float = Field(
        2.0, gt=0, description="seconds a skipped Sparkplug seq is awaited before it counts as lost (one process)"
    )
    sparkplug_revalidate: float = Field(
        1.0, gt=0, description="seconds a worker trusts its cached birth before re-reading the shared table"
    )
    notify: bool = Field(True, description="run the alert notifier in the daemon")
    notify_poll: float = Field(1.0, gt=0, description="seconds between outbox polls")
    notify_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="CIDRs notifications may reach besides public addresses (comma-separated), e.g. 10.0.0.0/8",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        return v.upper() if v.lower() in ("debug", "info", "warning", "error", "critical") else v.lower()

    @field_validator("notify_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, v: Any) -> Any:
        if isinstance(v, str):  # comma-separated, or a JSON list
            return json.loads(v) if v.strip().startswith("[") else [p.strip() for p in v.split(",") if p.strip()]
        return v

    # notification delivery (README "Notifications"): deadline, isolation, damping
    notify_attempt_timeout: float = Field(
        15.0, gt=0, le=600, description="seconds: one deadline over a whole attempt (connect, TLS, send, reply)"
    )
    notify_channels_at_once: int = Field(8, ge=1, le=64, description="channels sending side by side per notifier")
    notify_rate_per_minute: int = Field(60, ge=0, description="notifications a channel sends per minute; 0: no limit")
    notify_damping_window: float = Field(
        300.0, ge=0, description="seconds: one alert per (rule, device, channel) notified per window; 0: off"
    )

    def resolved_registry_url(self) -> str:
        """The registry URL to connect with: ``IOT_REGISTRY_PASSWORD`` joins a URL that names a user
        but no password, percent-escaped (any character is safe in it). Never log the result."""
        if not self.registry_url:
            return f"sqlite:///{(self.data_dir / EMBEDDED_REGISTRY_FILE).resolve()}"
        if self.registry_password is None:
            return self.registry_url
        from sqlalchemy.engine import make_url

        url = make_url(self.registry_url)
        if url.username is None or url.password is not None:
            return self.registry_url
        return url.set(password=self.registry_password.get_secret_value()).render_as_string(hide_password=False)

    @property
    def max_packet_bytes(self) -> int:
        """The largest MQTT packet read whole: the payload limit plus room for a topic (up to 64 KiB),
        a packet id and MQTT 5 properties. The daemon reads a larger PUBLISH only to discard it (and
        dead-letter it); the broker should refuse anything larger from devices (Mosquitto
        ``max_packet_size``, written by ``iot registry export-mosquitto``)."""
        return self.max_payload_bytes + PACKET_HEADER_ALLOWANCE

    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @staticmethod
    def reveal(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None


@contextmanager
def _pydantic_plugins_off() -> Iterator[None]:
    """Pydantic looks for plugins (the entry points of every installed package, ~20 ms of each
    command) when it builds a validator; Settings has no use for one. Typer builds its parameters'
    validators the same way."""
    before = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = before


with _pydantic_plugins_off():
    Settings.model_rebuild(force=True)


def _holds_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_holds_secret(a) for a in get_args(annotation))


SECRET_FIELDS: frozenset[str] = frozenset(
    name for name, field in Settings.model_fields.items() if _holds_secret(field.annotation)
)
"""The settings that hold secrets (``SecretStr``, alone or in a mapping): never copied into an environment."""
