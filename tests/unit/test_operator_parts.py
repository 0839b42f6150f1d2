"""The operator tooling's pure parts: [web] config writer, token file, metering ring, script helpers."""

from __future__ import annotations

import configparser
import importlib.util
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from core_support import T0, Building, event_cmd, make_engine

from ven_common.contract import BusTopics
from ven_common.web_conf import TOKEN_FILE, ensure_token, web_bind, write_web_section

REPO = Path(__file__).resolve().parents[2]


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), REPO / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False)
    parser.read(path)
    return parser


def test_web_section_added_to_an_existing_config_keeps_everything_else(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[volttron]\ninstance-name = vm\nmessagebus = zmq\naddress = a\naddress = b\n")
    assert write_web_section(tmp_path, "http://127.0.0.1:8080") is True
    ini = _ini(tmp_path / "config")
    assert ini["volttron"]["instance-name"] == "vm"
    assert ini["web"]["bind-web-address"] == "http://127.0.0.1:8080"
    key = ini["web"]["web-secret-key"]
    assert len(key) == 64
    assert "address = a\naddress = b" in (tmp_path / "config").read_text()  # repeated keys survive
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o600
    # Idempotent, and a port change keeps the generated key.
    assert write_web_section(tmp_path, "http://127.0.0.1:8080") is False
    assert write_web_section(tmp_path, "http://127.0.0.1:9090") is True
    assert _ini(tmp_path / "config")["web"]["web-secret-key"] == key
    assert web_bind(tmp_path) == "http://127.0.0.1:9090"


def test_web_section_before_the_first_start_has_a_volttron_section(tmp_path: Path) -> None:
    assert web_bind(tmp_path) is None
    write_web_section(tmp_path, "http://127.0.0.1:18080")
    ini = _ini(tmp_path / "config")
    assert ini["volttron"]["messagebus"] == "zmq" and ini["volttron"]["instance-name"]
    assert ini["web"]["bind-web-address"] == "http://127.0.0.1:18080"


def test_operator_token_is_created_once_and_private(tmp_path: Path) -> None:
    token = ensure_token(tmp_path)
    assert len(token) >= 24 and ensure_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / TOKEN_FILE).stat().st_mode) == 0o600


def test_metering_ring_keeps_the_last_hour_and_draws_the_target() -> None:
    from venagent.web import RING_SIZE, MeteringRing

    ring = MeteringRing()
    for i in range(RING_SIZE + 10):
        ring.add({"ts": float(i), "power_kw": 10.0, "baseline_kw": 10.0, "shed_kw": 0.0, "active_event": None}, None)
    assert len(ring.rows) == RING_SIZE and ring.rows[0][0] == 10.0
    ring.add({"ts": 5000.0, "power_kw": 7.5, "baseline_kw": 9.8, "shed_kw": 2.5, "active_event": "e1"}, 2.0)
    assert ring.since(4999.0) == [[5000.0, 7.5, 9.8, 2.5, 8.0, "e1"]]
    ring.add({"ts": "bad", "power_kw": 1.0}, None)  # ignored
    assert ring.rows[-1][0] == 5000.0


def test_recent_events_carry_the_completion_report() -> None:
    engine = make_engine()
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    ack, fx = engine.on_command(T0 + 1, event_cmd("evt-r", shed_kw=2.0, duration_sec=60))
    building.apply(fx.writes)
    assert ack["status"] == "accepted"
    assert engine.recent_events()[0]["event_id"] == "evt-r"
    engine.on_readings(T0 + 30, building.samples())
    ack, fx = engine.on_command(T0 + 31, {"op": "restore", "correlationId": "r-1"})
    building.apply(fx.writes)
    latest = engine.recent_events()[0]
    assert latest["state"] == "completed" and latest["ended_by"] == "restore"
    assert latest["report"]["type"] == "event_report" and "mean_actual_shed_kw" in latest["report"]


def test_web_observes_metering_and_status() -> None:
    from venagent.web import VenWeb

    web = VenWeb.__new__(VenWeb)  # no agent: only the data path
    from venagent.web import MeteringRing
    web.ring, web._requested = MeteringRing(), {}
    web.observe(BusTopics.STATUS, {"active_event": {"event_id": "e9", "requested_shed_kw": 1.5}})
    web.observe(BusTopics.METERING, {"ts": 1.0, "power_kw": 8.0, "shed_kw": 2.0, "active_event": "e9"})
    assert web.ring.rows[-1][4] == 8.5


def test_shadow_reduces_to_the_seed_shape() -> None:
    seed_shape = _script("ven_shadow.py").seed_shape
    full = {"power_kw": 10.0, "shed_kw": 0.0, "baseline_kw": 9.9, "active_event": None, "overrides": {},
            "circuits": [{"name": "HVAC", "enabled": True, "current_kw": 5.5, "priority": 3, "critical": False}]}
    assert seed_shape(full) == {"power_kw": 10.0, "shed_kw": 0.0, "active_event": None,
                                "circuits": [{"name": "HVAC", "enabled": True, "current_kw": 5.5}]}


def test_telemetry_unrolls_batches_and_keeps_the_ven_id() -> None:
    unroll = _script("ven_telemetry_listen.py").unroll
    assert list(unroll({"venId": "a", "power_kw": 1})) == [{"venId": "a", "power_kw": 1}]
    batch = {"batch": True, "venId": "b", "readings": [{"power_kw": 1}, {"venId": "c", "power_kw": 2}, "junk"]}
    assert list(unroll(batch)) == [{"venId": "b", "power_kw": 1}, {"venId": "c", "power_kw": 2}]
    assert list(unroll([1, 2])) == []


def test_scripts_do_not_import_volttron_unless_local() -> None:
    """volttron patches the whole process with gevent on import: only --local may pull it in."""
    code = ("import importlib.util, sys\n"
            "for n in ('ven_cmd_publish', 'ven_shadow', 'ven_telemetry_listen', 'register_ven'):\n"
            f"    s = importlib.util.spec_from_file_location(n, {str(REPO / 'scripts')!r} + '/' + n + '.py')\n"
            "    s.loader.exec_module(importlib.util.module_from_spec(s))\n"
            "sys.exit(1 if any(m.split('.')[0] == 'volttron' for m in sys.modules) else 0)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0


def test_only_this_platforms_orphaned_proxies_are_ended() -> None:
    from venagent.proxy_reaper import Proc, orphaned_proxies

    home = "/var/lib/volttron-ven/vhome"
    procs = [
        Proc(10, 1, b"volttron\0-v", home),
        Proc(20, 10, b"python\0-c\0from platform_driver.agent import main; main()", home),
        Proc(21, 20, b"python\0-m\0protocol_proxy.proxy\0ModbusProxy", home),   # the live driver's
        Proc(30, 1, b"python\0-m\0protocol_proxy.proxy\0ModbusProxy", home),    # orphaned by a killed driver
        Proc(31, 99, b"python\0-m\0protocol_proxy.proxy\0ModbusProxy", home),   # parent gone
        Proc(40, 1, b"python\0-m\0protocol_proxy.proxy\0ModbusProxy", "/other/vhome"),  # another platform's
    ]
    assert orphaned_proxies(procs, home) == [30, 31]


def test_the_timeout_order_is_checked_where_both_configs_meet(tmp_path: Path) -> None:
    """The bridge must wait longer for the VEN's answer than the VEN waits for the driver: the committed
    configs keep that order, and a pair that breaks it is refused when rendered, naming both fields."""
    import json

    from ven_common.contract import timeout_order_problem
    bridge = json.loads((REPO / "config/bridge.json").read_text())
    ven = json.loads((REPO / "config/ven-agent.json").read_text())
    assert timeout_order_problem(bridge.get("rpc_timeout_sec", 8.0), ven.get("driver_timeout_sec", 3.0)) is None
    problem = timeout_order_problem(4.0, 3.0)
    assert problem is not None and "rpc_timeout_sec (4)" in problem and "driver_timeout_sec (3)" in problem
    render = _script("render_configs.py")
    render.REPO = tmp_path  # a checkout whose VEN waits for its driver as long as the bridge waits for the VEN
    (tmp_path / "config/driver").mkdir(parents=True)
    for name in ("config/driver/sim.config", "config/driver/panel.config", "config/bridge.json"):
        (tmp_path / name).write_text((REPO / name).read_text())
    (tmp_path / "config/ven-agent.json").write_text(json.dumps(dict(ven, driver_timeout_sec=10)))
    with pytest.raises(render.RenderError, match="driver_timeout_sec"):
        render.render(tmp_path / "out", "volttron_thing", tmp_path, "campus/building/panel", None, 8883)
    assert not (tmp_path / "out/bridge.json").exists()
