"""Every promise checked from outside: the backend's MQTT client (``cloud_backend``), a really
stopped driver or VEN agent, a real unprivileged identity added with ``vctl auth add``.

Each test reads the system the way its user does; none goes through an RPC shortcut where the
promise is about MQTT.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from ven_common.contract import event_command

from tests.support.backend import Backend
from tests.support.system import REPO, Platform, SystemError_, wait_until
from tests.support.ven_checks import (
    DEVICE,
    THING,
    TOPICS,
    ack_for,
    cid,
    enabled,
    readings,
    restore_idle,
    seed_reading_problem,
)

pytestmark = pytest.mark.platform

BASELINE_KW = 10.0            # HVAC 5.5 + Heater 2.5 + Water Heater 1.2 + Lighting 0.8 (EV Charger off)
SMALLEST_SHEDDABLE_KW = 1.2   # the cover's granularity in the default building
NOISE_KW = 0.3


def _uuid(platform: Platform, identity: str) -> str:
    return str(platform.agents()[identity]["agent_uuid"])


def _strip(ack: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ack.items() if k != "seq"}


# 1. A re-sent command is answered ------------------------------------------------------------

def test_a_resent_command_gets_the_identical_ack_and_changes_nothing(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    c = cid()
    payload = json.dumps(event_command(correlation_id=c, ven_id=THING, event_id=f"evt-{c}", shed_kw=1.0,
                                       duration_sec=120))
    backend.publish(TOPICS.cmd, payload)
    first = ack_for(backend, c)
    assert first["status"] == "accepted"
    shed = platform.rpc("ven.agent", "get_status")["active_event"]["shed_circuits"]
    # The backend did not see the ack (say) and sends the very same bytes again.
    backend.publish(TOPICS.cmd, payload)
    acks = wait_until(lambda: (a := [m.json() for m in backend.on_topic(TOPICS.ack)
                                     if m.json().get("correlationId") == c and m.json().get("type") is None])
                      and len(a) >= 2 and a, 15, 0.2, "a second ack for the re-sent command")
    assert len(acks) == 2 and _strip(acks[1]) == _strip(first)
    assert acks[1]["seq"] != first["seq"], "a new message, numbered like every other"
    status = platform.rpc("ven.agent", "get_status")
    assert status["active_event"]["event_id"] == f"evt-{c}" and status["active_event"]["shed_circuits"] == shed

    # The same correlationId on a different command: rejected with a reason that says so; nothing changes.
    other = json.dumps(event_command(correlation_id=c, ven_id=THING, event_id=f"evt-{c}", shed_kw=6.0,
                                     duration_sec=120))
    since = time.time()
    backend.publish(TOPICS.cmd, other)
    reused = backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == c and d.get("status") == "rejected",
                               since=since)
    assert reused["reason_code"] == "correlation_reused" and "different command" in reused["reason"]
    assert platform.rpc("ven.agent", "get_status")["active_event"]["requested_shed_kw"] == 1.0
    restore_idle(platform)


# 2. Metering is seed-shaped -------------------------------------------------------------------

def test_every_metering_message_is_one_seed_shaped_reading(platform: Platform, backend: Backend) -> None:
    since = time.time()
    wait_until(lambda: len(backend.on_topic(TOPICS.metering)) >= 3, 20, 0.2, "three readings")
    for msg in backend.on_topic(TOPICS.metering):
        if msg.at >= since:
            problem = seed_reading_problem(msg.json())
            assert problem is None, f"{problem}: {msg.payload[:200]!r}"


# 3. A driver outage: a truthful ack, no overshoot, the fault visible ---------------------------

def test_driver_outage_gets_a_truthful_ack_stale_metering_and_no_overshoot(platform: Platform,
                                                                         backend: Backend) -> None:
    restore_idle(platform)
    driver = _uuid(platform, "platform.driver")
    c = cid()
    platform.vctl("stop", driver)
    try:
        stopped = time.time()
        sent = time.time()
        backend.publish(TOPICS.cmd, event_command(correlation_id=c, ven_id=THING, event_id=f"evt-{c}",
                                                  shed_kw=2.0, duration_sec=180))
        ack = ack_for(backend, c, timeout=20)
        ack_sec = time.time() - sent
        # Either the VEN already saw the readings go stale (no write tried) or its writes failed:
        # both ways it claims nothing it did not measure, and says why.
        assert ack["status"] == "accepted", ack
        assert ack["actual_shed_kw"] == 0.0 and ack["shortfall_kw"] == 2.0, ack
        assert DEVICE in ack["note"] or "driver" in ack["note"], ack["note"]
        assert ack_sec <= 8.0, f"ack took {ack_sec:.1f} s"

        # Metering keeps its cadence and says plainly that no fresh reading exists.
        # Ten readings: the outage lasts twice the hold loop's confirmation time (5 s), which once
        # was enough to shed circuit after circuit on readings that no longer changed.
        stale = wait_until(lambda: (s := [r for r in readings(backend, stopped) if r.get("quality") == "stale"])
                           and len(s) >= 10 and s, 40, 0.3, "ten stale readings")
        assert all(r["power_kw"] is None and r["shed_kw"] is None for r in stale)
        assert all(seed_reading_problem(r) is None for r in stale)
        gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(stale)]
        assert max(gaps) <= 1.6, f"stale readings {gaps} s apart"
        fault = backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "device_fault"
                                  and d.get("state") == "begin" and d.get("device") == DEVICE, since=stopped)
        status = platform.rpc("ven.agent", "get_status")
        assert status["power_kw"] is None and any(f["device"] == DEVICE for f in status["device_faults"])
        assert status["active_event"]["event_id"] == f"evt-{c}"
        # Nothing more was shed on the stale data.
        assert len(platform.rpc("ven.agent", "get_status")["active_event"]["shed_circuits"]) <= 1
    finally:
        back = time.time()
        platform.vctl("start", driver)
    # Fresh readings return: the request is met within one circuit, never overshot beyond that.
    wait_until(lambda: [r for r in readings(backend, back) if r.get("quality") == "good"], 60, 0.3,
               "a fresh reading after the driver came back")
    backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "device_fault" and d.get("state") == "end"
                      and d.get("device") == DEVICE and d.get("kind") == "stale", since=back, timeout=30)
    settled = wait_until(lambda: not enabled(platform, "Heater_enabled") and time.time(), 30, 0.3, "the shed applied")
    end_watch = settled + 12
    wait_until(lambda: time.time() >= end_watch, 20, 0.5)
    good = [r for r in readings(backend, back) if r.get("quality") == "good" and r["active_event"] == f"evt-{c}"]
    worst = max(BASELINE_KW - r["power_kw"] for r in good)
    final = good[-1]
    print(f"driver outage: ack after {ack_sec:.2f} s ({ack.get('note')}); worst shed after recovery "
          f"{worst:.2f} kW for a 2.0 kW request; final {BASELINE_KW - final['power_kw']:.2f} kW; "
          f"fault begin after {fault['ts'] - stopped:.1f} s")
    assert worst <= 2.0 + SMALLEST_SHEDDABLE_KW + NOISE_KW, f"overshoot: {worst:.2f} kW shed for 2.0 kW"
    assert BASELINE_KW - final["power_kw"] >= 2.0 - NOISE_KW, "the request is met once fresh readings return"
    restore_idle(platform)


# 4. Only trusted identities command the building ----------------------------------------------

def test_an_identity_added_with_vctl_cannot_command_the_building(platform: Platform) -> None:
    restore_idle(platform)
    before = platform.rpc("ven.agent", "get_status")
    intruder = "intruder.agent"
    refused = []
    for method, args in (("handle_command", [{"op": "event", "correlationId": cid(), "event_id": "evt-intruder",
                                              "shed_kw": 5.0, "duration_sec": 60}]),
                         ("send_event", [5.0, 60]), ("restore", []), ("set_override", ["HVAC", False]),
                         ("apply_shadow_config", [{"metering_interval_sec": 60}])):
        with pytest.raises(SystemError_) as info:
            platform.rpc("ven.agent", method, *args, identity=intruder)
        refused.append(str(info.value))
        assert "Traceback" not in str(info.value)
    assert all("not authorized" in r.lower() or "unauthorized" in r.lower() or "access" in r.lower()
               for r in refused), refused
    after = platform.rpc("ven.agent", "get_status", identity=intruder)  # reading stays open
    assert after["active_event"] is None and after["overrides"] == before["overrides"]
    assert all(enabled(platform, p) for p in ("HVAC_enabled", "Heater_enabled"))
    # The operator tool, granted by install_agents.sh, still may.
    assert platform.rpc("ven.agent", "restore")["status"] == "accepted"


# 5. Errors on the command path are named, and nothing is lost -----------------------------------

def test_a_command_while_the_ven_is_stopped_gets_not_ready_and_its_retry_the_real_ack(
        platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    ven = _uuid(platform, "ven.agent")
    c = cid()
    payload = json.dumps({"op": "status", "correlationId": c, "venId": THING})
    platform.vctl("stop", ven)
    try:
        sent = time.time()
        backend.publish(TOPICS.cmd, payload)
        ack = ack_for(backend, c, timeout=20)
        took = time.time() - sent
        assert ack["status"] == "rejected" and ack["reason_code"] == "not_ready", ack
    finally:
        platform.vctl("start", ven)
    wait_until(lambda: platform.agent_running("ven.agent"), 30, 0.5, "the VEN running again")
    since = time.time()

    def answered() -> Any:
        backend.publish(TOPICS.cmd, payload)  # the backend's retry
        try:
            return backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == c
                                     and d.get("status") == "accepted", since=since, timeout=3)
        except TimeoutError:
            return None
    real = wait_until(answered, 60, 0.5, "the retry answered by the VEN")
    assert real["op"] == "status" and "status_snapshot" in real
    print(f"VEN stopped: not_ready after {took:.2f} s; the retry got the VEN's ack")
    bridge = platform.rpc("ven.bridge", "get_status")
    assert bridge["not_ready"] >= 1 and bridge["commands_unacked"] == 0


def test_operator_tool_refusal_is_one_line(platform: Platform) -> None:
    """A refused call reaches the operator as one line naming the problem, never a traceback."""
    result = subprocess.run([sys.executable, str(REPO / "scripts/ven_rpc.py"), "--identity", "intruder.agent",
                             "ven.agent", "restore"], check=False, env=platform.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
