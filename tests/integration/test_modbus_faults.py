"""Faithful faults on the real protocol: the Modbus panel (its own process) read and written only
through the real VOLTTRON Modbus driver, checked with a Modbus client of our own and from the
backend's side. The device refuses connections, hangs, comes back with its power-on relays; the
VEN's box dies while the panel keeps its relays; the driver alone is killed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ven_common.contract import event_command

from tests.support.backend import Backend
from tests.support.device import PanelDevice, wait_relays
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import DEVICE, THING, TOPICS, ack_for, cid, readings, restore_idle, send_event

pytestmark = pytest.mark.platform

BASELINE_KW = 10.0
SMALLEST_SHEDDABLE_KW = 1.2
NOISE_KW = 0.3


def _good(backend: Backend, since: float, event_id: str) -> list[dict[str, Any]]:
    return [r for r in readings(backend, since) if r.get("quality") == "good" and r.get("active_event") == event_id]


def test_panel_refuses_then_returns_with_power_on_relays_and_the_shed_is_reasserted(
        platform: Platform, backend: Backend, panel: PanelDevice) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 240)
    ack = ack_for(backend, c)
    assert ack["status"] == "accepted" and ack["actual_shed_kw"] >= 2.0 - NOISE_KW, ack
    wait_relays(panel, {"Heater": False})
    panel.kill()
    killed = time.time()
    try:
        stale = wait_until(lambda: (s := [r for r in readings(backend, killed) if r.get("quality") == "stale"])
                           and len(s) >= 3 and s, 30, 0.3, "stale readings while the panel refuses connections")
        assert all(r["power_kw"] is None for r in stale), "nothing claimed that was not measured"
    finally:
        panel.start()  # power-on defaults: every relay as the registry's Default Value (Heater on)
    back = time.time()
    assert panel.relays()["Heater"] is True, "the panel came back with its power-on relays"
    wait_relays(panel, {"Heater": False}, timeout=40)
    reasserted = time.time() - back
    wait_until(lambda: len(_good(backend, back, f"evt-{c}")) >= 8, 40, 0.3, "fresh readings after the panel returned")
    good = _good(backend, back, f"evt-{c}")
    worst = max(BASELINE_KW - r["power_kw"] for r in good)
    final = BASELINE_KW - good[-1]["power_kw"]
    print(f"panel restarted with power-on relays: shed re-asserted {reasserted:.1f} s later; worst shed {worst:.2f} kW, "
          f"final {final:.2f} kW for 2.0 kW")
    assert worst <= 2.0 + SMALLEST_SHEDDABLE_KW + NOISE_KW and final >= 2.0 - NOISE_KW
    backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "device_fault" and d.get("state") == "end"
                      and d.get("device") == DEVICE, since=killed, timeout=30)
    restore_idle(platform)


def test_hung_panel_gets_truthful_acks_in_time_and_converges_after_the_ghost_writes(
        platform: Platform, backend: Backend, panel: PanelDevice) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 240)
    assert ack_for(backend, c)["status"] == "accepted"
    wait_relays(panel, {"Heater": False})
    panel.hang()
    try:
        # Raise the request while the panel hangs: the VEN switches other circuits, the writes hang.
        m = cid()
        sent = time.time()
        backend.publish(TOPICS.cmd, event_command(correlation_id=m, ven_id=THING, event_id=f"evt-{c}", shed_kw=5.0,
                                                  duration_sec=240))
        ack = ack_for(backend, m, timeout=20)
        ack_sec = time.time() - sent
        assert ack["status"] == "accepted", ack
        assert ack_sec <= 8.0, f"ack after {ack_sec:.1f} s"
        # Whatever the VEN chose, nothing the driver did not confirm is claimed.
        assert ack["actual_shed_kw"] <= 2.5 + NOISE_KW and ack.get("note"), ack
        s = cid()
        sent = time.time()
        backend.publish(TOPICS.cmd, {"op": "status", "correlationId": s, "venId": THING})
        assert ack_for(backend, s, timeout=20)["status"] == "accepted"
        status_sec = time.time() - sent
    finally:
        panel.resume()
    resumed = time.time()

    def converged() -> bool:
        want = set(platform.rpc("ven.agent", "get_status")["active_event"]["shed_circuits"])
        relays = panel.relays()
        off = {name for name in ("HVAC", "Heater", "Water Heater") if not relays[name]}
        return bool(want) and off == want
    wait_until(converged, 60, 0.5, "the panel's relays converged on the VEN's shed set")
    took = time.time() - resumed
    wait_until(lambda: len(_good(backend, resumed + took, f"evt-{c}")) >= 3, 30, 0.3, "fresh readings")
    final = BASELINE_KW - _good(backend, resumed + took, f"evt-{c}")[-1]["power_kw"]
    print(f"hung panel: modify acked after {ack_sec:.2f} s (actual {ack['actual_shed_kw']}: {ack.get('note')}); "
          f"status acked after {status_sec:.2f} s; converged {took:.1f} s after the panel resumed; shed {final:.2f} kW")
    assert final >= 5.0 - NOISE_KW
    restore_idle(platform)


def _kill_box(platform: Platform) -> None:
    """SIGKILL to the platform and every agent (its process group: driver, proxy, VEN, bridge)."""
    assert platform.proc is not None
    os.killpg(platform.proc.pid, signal.SIGKILL)
    platform.proc.wait(10)


def _agents_up(platform: Platform) -> None:
    wait_until(lambda: all(platform.agent_running(i) for i in ("platform.driver", "ven.agent", "ven.bridge")),
               120, 1.0, "every agent running after the restart", retry_on=(Exception,))


def test_box_dies_mid_event_and_comes_back_while_it_is_active(platform: Platform, backend: Backend,
                                                               panel: PanelDevice) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 240)
    assert ack_for(backend, c)["status"] == "accepted"
    wait_relays(panel, {"Heater": False})
    _kill_box(platform)
    assert panel.relays()["Heater"] is False, "the panel keeps its relays when the box dies"
    started = time.time()
    platform.start()
    _agents_up(platform)
    resumed = backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "actuation" and d.get("reason") == "resume"
                                and d.get("event_id") == f"evt-{c}", since=started, timeout=90)
    assert resumed["writes"].get("Heater") is False
    wait_until(lambda: _good(backend, started, f"evt-{c}"), 60, 0.5, "fresh readings of the event after the restart")
    print(f"box restarted mid-event: shed re-applied {resumed['ts'] - started:.1f} s after the platform start")
    assert panel.relays()["Heater"] is False
    status = platform.rpc("ven.agent", "get_status")
    assert status["active_event"]["event_id"] == f"evt-{c}"
    restore_idle(platform)


def test_box_down_through_the_event_end_restores_every_circuit_it_shed(platform: Platform, backend: Backend,
                                                                       panel: PanelDevice) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 20)
    ack = ack_for(backend, c)
    assert ack["status"] == "accepted"
    wait_relays(panel, {"Heater": False})
    _kill_box(platform)
    wait_until(lambda: time.time() >= ack["end_ts"] + 3, 40, 0.5)
    assert panel.relays()["Heater"] is False, "loads stay off while the box is down (the failure to repair)"
    started = time.time()
    platform.start()
    _agents_up(platform)
    wait_relays(panel, {"HVAC": True, "Heater": True, "Water Heater": True, "EV Charger": False}, timeout=90)
    restored = time.time() - started
    report = backend.wait_json(TOPICS.ack, lambda d: d.get("type") == "event_report" and d.get("event_id") == f"evt-{c}",
                               timeout=60)
    print(f"box restarted after the event's end: loads restored {restored:.1f} s after the platform start "
          f"(report ended_by {report['ended_by']})")
    assert platform.rpc("ven.agent", "get_status")["active_event"] is None


def _proxies(vhome: Path) -> dict[int, int]:
    """protocol_proxy processes of this platform: pid -> ppid."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"protocol_proxy" not in (proc / "cmdline").read_bytes():
                continue
            if f"VOLTTRON_HOME={vhome}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            out[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    return out


def test_driver_killed_alone_leaves_no_orphaned_proxy_holding_the_panel(platform: Platform, backend: Backend,
                                                                        panel: PanelDevice) -> None:
    old = platform.agent_pid("platform.driver")
    assert old and _proxies(platform.vhome), "the Modbus driver runs a protocol proxy"
    os.kill(old, signal.SIGKILL)
    killed = time.time()
    wait_until(lambda: (p := platform.agent_pid("platform.driver")) and p != old, 90, 0.5, "the driver restarted",
               retry_on=(Exception,))
    driver = platform.agent_pid("platform.driver")

    def only_the_new_drivers() -> bool:
        proxies = _proxies(platform.vhome)
        return bool(proxies) and all(ppid == driver for ppid in proxies.values())
    wait_until(only_the_new_drivers, 60, 0.5, "no protocol proxy left but the new driver's")
    print(f"driver SIGKILLed: orphaned proxy gone {time.time() - killed:.1f} s later")
    wait_until(lambda: [r for r in readings(backend, time.time() - 1) if r.get("quality") == "good"], 60, 0.5,
               "fresh readings through the new driver")
