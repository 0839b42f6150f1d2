from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from backendbridge.config import BridgeConfig, ConfigError, load_config

AGENT_DIR = Path(__file__).resolve().parents[2] / "BackendBridgeAgent"


def test_defaults_are_the_seed_values() -> None:
    cfg = load_config({}, env={})
    assert cfg.thing_name == "volttron_thing"
    assert cfg.endpoint == "localhost" and cfg.port == 8883
    topics = cfg.mqtt_topics()
    assert topics.metering == "volttron/metering"
    assert topics.cmd == "ven/cmd/volttron_thing"
    assert topics.ack == "ven/ack/volttron_thing"
    assert topics.telemetry == "ven/telemetry/volttron_thing"
    assert cfg.max_publish_per_sec <= 100


def test_shipped_default_config_file_is_valid() -> None:
    raw = json.loads((AGENT_DIR.parent / "config" / "bridge.json").read_text())
    assert load_config(raw, env={}).cert_file == Path("certs/client.crt")
    assert (AGENT_DIR / "backendbridge-default-vip-id").read_text().strip() == "ven.bridge"


def test_env_overrides_win() -> None:
    cfg = load_config(
        {"thing_name": "a", "port": 1},
        env={"IOT_THING_NAME": "thing9", "IOT_ENDPOINT": "x.iot.example", "IOT_PORT": "443", "BACKEND_URL": "http://b/"},
    )
    assert (cfg.thing_name, cfg.endpoint, cfg.port, cfg.backend_url) == ("thing9", "x.iot.example", 443, "http://b")


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {"port": 0, "thing_name": "a/b", "bogus": 1, "max_publish_per_sec": 500, "keepalive": 5},
            env={},
        )
    text = str(info.value)
    for key in ("port", "thing_name", "bogus", "max_publish_per_sec", "keepalive"):
        assert key in text
    assert len(info.value.problems) == 5


def test_cross_field_checks() -> None:
    with pytest.raises(ConfigError, match="reconnect_min_sec"):
        load_config({"reconnect_min_sec": 10, "reconnect_max_sec": 1}, env={})
    # Topics are the contract's: a config naming others would split the system from the broker and backend.
    with pytest.raises(ConfigError, match="topics are not configurable"):
        load_config({"topics": {"metering": "a/b/c/d/e/f/g/h/i"}}, env={})
    assert load_config({"topics": {"metering": "volttron/metering"}}, env={}).mqtt_topics().metering == \
        "volttron/metering"


def test_frozen_and_cert_dir_resolution(tmp_path: Path) -> None:
    cfg = load_config({"cert_dir": str(tmp_path), "ca_path": "ca.pem", "key_path": "/abs/k.key"}, env={})
    assert cfg.ca_file == tmp_path / "ca.pem"
    assert cfg.key_file == Path("/abs/k.key")
    with pytest.raises(pydantic.ValidationError):
        cfg.port = 1  # type: ignore[misc]
    assert isinstance(cfg, BridgeConfig)
    assert cfg.outbox_file(tmp_path) == tmp_path / "outbox.sqlite"


def test_shipped_ven_agent_config_is_valid() -> None:
    from venagent.core import VenConfig

    cfg = VenConfig.from_dict(json.loads((AGENT_DIR.parent / "config" / "ven-agent.json").read_text()))
    assert {c.name for c in cfg.circuits} >= {"HVAC", "Heater", "EV Charger"}
    assert [c.name for c in cfg.circuits if c.critical] == ["Lighting"]


def test_the_bridges_exceptions_share_one_base() -> None:
    from backendbridge import errors
    from backendbridge.config import ConfigError
    for kind in (errors.VenUnreachable, errors.VenFailed, errors.JournalUnavailable, errors.CertificateError,
                 ConfigError):
        assert issubclass(kind, errors.BridgeError), kind
