"""The bridge's configuration: one frozen, validated model; every problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ven_common.contract import (
    AWS_MAX_INFLIGHT,
    AWS_MAX_PUBLISH_PER_SECOND,
    DEFAULT_RPC_TIMEOUT_SEC,
    DEFAULT_THING_NAME,
    MqttTopics,
    resolve_thing_name,
)
from ven_common.errors import ConfigError as _ProjectConfigError

from backendbridge.errors import BridgeError
from backendbridge.limits import topic_problems

# Environment variables that override the config store (the seed's deployment knobs). The thing name
# follows the one rule of ven_common.contract.resolve_thing_name, shared with the VEN.
ENV_OVERRIDES: dict[str, str] = {
    "IOT_ENDPOINT": "endpoint",
    "IOT_PORT": "port",
    "BACKEND_URL": "backend_url",
}


class ConfigError(BridgeError, _ProjectConfigError):
    """The bridge's configuration is invalid: every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems, "invalid bridge config:\n  " + "\n  ".join(problems))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_CONTRACT = MqttTopics(DEFAULT_THING_NAME)


class TopicConfig(_Frozen):
    """The MQTT topic names: the contract's (ven_common.contract.MqttTopics), not the bridge's to choose. A config
    may still spell them out (older ones did), but another name is refused: the broker's ACL, the backend and the
    tools take theirs from the contract, and a bridge on its own names would split the system silently."""

    metering: str = _CONTRACT.metering
    cmd_prefix: str = _CONTRACT.cmd_prefix
    ack_prefix: str = _CONTRACT.ack_prefix
    telemetry_prefix: str = _CONTRACT.telemetry_prefix

    @model_validator(mode="after")
    def _the_contracts(self) -> TopicConfig:
        for name in ("metering", "cmd_prefix", "ack_prefix", "telemetry_prefix"):
            if getattr(self, name) != getattr(_CONTRACT, name):
                raise ValueError(f"{name} must be the contract's {getattr(_CONTRACT, name)!r} (topics are not "
                                 "configurable: remove 'topics' from the bridge config)")
        return self


class BridgeConfig(_Frozen):
    thing_name: str = Field(DEFAULT_THING_NAME, min_length=1)
    endpoint: str = Field("localhost", min_length=1)
    port: int = Field(8883, ge=1, le=65535)
    backend_url: str | None = None

    # Relative cert paths are resolved against cert_dir when it is set (else against the
    # working directory); the file names default to the seed's.
    cert_dir: str | None = None
    ca_path: str = "certs/ca.pem"
    cert_path: str = "certs/client.crt"
    key_path: str = "certs/client.key"

    topics: TopicConfig = TopicConfig()

    # None = "<agent data dir>/outbox.sqlite".
    outbox_path: str | None = None
    outbox_max_messages: int = Field(200_000, ge=1)
    # And at most this many bytes of payload (drop_oldest past it too): at 500 circuits a reading is ~30 KB.
    outbox_max_bytes: int = Field(512 * 1024 * 1024, ge=64 * 1024)
    outbox_drop_policy: Literal["drop_oldest"] = "drop_oldest"
    # NORMAL survives a killed process (WAL); FULL also survives power loss at ~1 fsync/enqueue.
    outbox_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    # Off by default: the seed's pipeline (IoT rule -> consumer) stores one reading per message, so
    # every message on the metering topic is one seed-shaped reading. On, a backlog leaves as
    # {"batch": true, "readings": [...]} (a contract change, only for backends that ask for it).
    batch_metering: bool = False
    batch_max_readings: int = Field(100, ge=1, le=10_000)
    # AWS IoT allows 100 publishes/s per connection; one reading per message, an hour's backlog
    # (3,600 readings) then drains in ~40 s beside the live traffic.
    max_publish_per_sec: float = Field(90.0, gt=0, le=AWS_MAX_PUBLISH_PER_SECOND)
    # Unacknowledged QoS-1 publishes. paho re-sends all of them at once after a reconnect, so a
    # small window keeps that burst well under AWS's 100 publishes/s (20 at ~1 ms per PUBACK on
    # localhost, ~50 ms to AWS, still allows several hundred publishes/s).
    max_inflight: int = Field(20, ge=1, le=AWS_MAX_INFLIGHT)

    reconnect_min_sec: float = Field(1.0, gt=0)
    reconnect_max_sec: float = Field(30.0, gt=0)
    stable_after_sec: float = Field(30.0, ge=0)
    keepalive: int = Field(30, ge=30, le=1200)

    shadow_interval_sec: float = Field(60.0, gt=0)
    shadow_debounce_sec: float = Field(2.0, ge=0)
    status_interval_sec: float = Field(10.0, gt=0)

    # Longer than the VEN's longest answer (its driver_timeout_sec, 3 s, plus the core's
    # milliseconds): a slow device gives a truthful ack from the VEN, never a false not_ready.
    rpc_timeout_sec: float = Field(DEFAULT_RPC_TIMEOUT_SEC, gt=0)
    registration_enabled: bool = True
    registration_timeout_sec: float = Field(5.0, gt=0)
    latitude: float = Field(37.7749, ge=-90, le=90)
    longitude: float = Field(-122.4194, ge=-180, le=180)

    @field_validator("thing_name")
    @classmethod
    def _thing_is_topic_safe(cls, value: str) -> str:
        # The thing name becomes a topic level and the MQTT client id (AWS: <= 128 bytes).
        if any(ch in value for ch in "/+#\0") or len(value.encode()) > 128:
            raise ValueError("must be <= 128 bytes without '/', '+', '#' or NUL")
        return value

    @field_validator("backend_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _cross_field(self) -> BridgeConfig:
        problems: list[str] = []
        if self.reconnect_min_sec > self.reconnect_max_sec:
            problems.append("reconnect_min_sec must be <= reconnect_max_sec")
        for name, topic in self.mqtt_topics().all_publish_and_subscribe():
            for problem in topic_problems(topic):
                problems.append(f"topic {name} {topic!r}: {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def mqtt_topics(self) -> BridgeTopics:
        return BridgeTopics(
            thing=self.thing_name,
            metering=self.topics.metering,
            cmd_prefix=self.topics.cmd_prefix,
            ack_prefix=self.topics.ack_prefix,
            telemetry_prefix=self.topics.telemetry_prefix,
        )

    def _resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        if p.is_absolute() or self.cert_dir is None:
            return p
        return Path(self.cert_dir).expanduser() / p

    @property
    def ca_file(self) -> Path:
        return self._resolve(self.ca_path)

    @property
    def cert_file(self) -> Path:
        return self._resolve(self.cert_path)

    @property
    def key_file(self) -> Path:
        return self._resolve(self.key_path)

    def outbox_file(self, data_dir: str | os.PathLike[str]) -> Path:
        return Path(self.outbox_path) if self.outbox_path else Path(data_dir) / "outbox.sqlite"


class BridgeTopics(MqttTopics):
    """The contract's topics plus the list the config validator checks against AWS limits."""

    def all_publish_and_subscribe(self) -> list[tuple[str, str]]:
        return [
            ("metering", self.metering),
            ("cmd", self.cmd),
            ("ack", self.ack),
            ("telemetry", self.telemetry),
            ("shadow_update", self.shadow_update),
            ("shadow_update_delta", self.shadow_update_delta),
            ("shadow_update_rejected", self.shadow_update_rejected),
            ("shadow_get", self.shadow_get),
            ("shadow_get_accepted", self.shadow_get_accepted),
        ]

    def subscriptions(self) -> list[str]:
        return [self.cmd, self.shadow_update_delta, self.shadow_update_rejected, self.shadow_get_accepted]


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def load_config(raw: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Validate ``raw`` (config store / file contents) with environment overrides applied.

    Raises :class:`ConfigError` listing every problem.
    """
    data: dict[str, Any] = dict(raw or {})
    environ = os.environ if env is None else env
    for var, key in ENV_OVERRIDES.items():
        value = environ.get(var)
        if value not in (None, ""):
            data[key] = value
    data["thing_name"] = resolve_thing_name(data.get("thing_name"), environ)
    try:
        return BridgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
