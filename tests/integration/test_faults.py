"""Faults on the real system, observed from outside as a backend would (cloud_backend on the broker)
and on the driver's points: broker SIGKILLs, bridge SIGKILL, VenAgent restarts, broker down for a
whole event. Nothing may be lost and loads are always restored on local time."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest

from tests.support.backend import Backend
from tests.support.broker import LocalBroker
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import (TOPICS, ack_for, enabled, readings, restore_idle, send_event,
                                      seq_gaps, wait_readings)

pytestmark = pytest.mark.platform

MAX_READING_GAP_SEC = 1.6  # 1 Hz metering; more than this between two readings is a lost reading


@pytest.fixture()
def durable_backend(broker: LocalBroker, certs) -> Iterator[Backend]:
    b = Backend(certs, broker.port, client_id="backend-durable", persistent=True).start()
    yield b
    b.stop()


def _reading_ts_gaps(rs: list[dict]) -> list[tuple[float, float]]:
    ts = sorted({round(r["ts"], 3) for r in rs})
    return [(a, b) for a, b in zip(ts, ts[1:]) if b - a > MAX_READING_GAP_SEC]


def _uuid(platform: Platform, identity: str) -> str:
    return platform.agents()[identity]["agent_uuid"]


def test_broker_sigkill_three_times_loses_no_reading_and_no_ack(
        platform: Platform, broker: LocalBroker, durable_backend: Backend) -> None:
    restore_idle(platform)
    t0 = time.time()
    wait_readings(durable_backend, t0, 3)
    corr = []
    for _ in range(3):
        c = send_event(durable_backend, 1.0, 3)
        corr.append(c)
        ack_for(durable_backend, c)
        broker.kill()
        time.sleep(2.0)  # the outage itself: readings keep coming on the bus meanwhile
        broker.restart()
        wait_until(lambda: durable_backend.connected.is_set() and durable_backend.client.is_connected(), 20, 0.2,
                   "backend reconnected")
    # After the last restart, everything the VEN produced up to now must arrive, in sequence.
    t_end = time.time()
    wait_until(lambda: any(r["ts"] >= t_end for r in readings(durable_backend, t0)), 60, 0.5,
               "readings produced after the last restart")
    rs = [r for r in readings(durable_backend, t0) if r["ts"] <= t_end]
    # seq is contiguous per topic: a hole is a lost message. The VEN's 1 Hz timestamps must
    # have no hole either (a reading lost before it reached the bridge would not show in seq).
    assert not seq_gaps([r["seq"] for r in rs]), f"metering seq holes: {seq_gaps([r['seq'] for r in rs])}"
    assert not _reading_ts_gaps(rs), f"readings missing around: {_reading_ts_gaps(rs)}"
    ack_seqs = [d["seq"] for d in (m.json() for m in durable_backend.on_topic(TOPICS.ack) if m.at >= t0)]
    assert not seq_gaps(ack_seqs), f"ack seq holes: {seq_gaps(ack_seqs)}"
    wait_until(lambda: {f"evt-{c}" for c in corr} <= {d.get("event_id") for d in (
        m.json() for m in durable_backend.on_topic(TOPICS.ack)) if d.get("type") == "event_report"}, 60, 0.5,
        "the three completion reports")
    restore_idle(platform)


def test_bridge_sigkill_mid_stream_loses_nothing(platform: Platform, backend: Backend) -> None:
    t0 = time.time()
    wait_readings(backend, t0, 3)
    old_pid = platform.agent_pid("ven.bridge")
    assert old_pid
    os.kill(old_pid, signal.SIGKILL)
    # The platform's crash monitor restarts it; the bridge catches up from the VEN's journal.
    wait_until(lambda: (p := platform.agent_pid("ven.bridge")) and p != old_pid, 60, 0.5, "bridge restarted")
    t_back = time.time()
    wait_until(lambda: any(r["ts"] > t_back + 2 for r in readings(backend, t0)), 40, 0.5, "readings after restart")
    rs = [r for r in readings(backend, t0) if r["ts"] <= t_back]
    assert not _reading_ts_gaps(rs), f"readings lost while the bridge was down: {_reading_ts_gaps(rs)}"
    assert not seq_gaps([r["seq"] for r in readings(backend, t0)])


def test_ven_restart_mid_event_reapplies_the_shed(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 120)
    assert ack_for(backend, c)["status"] == "accepted"
    assert not enabled(platform, "Heater_enabled")
    uuid = _uuid(platform, "ven.agent")
    platform.vctl("stop", uuid)
    # While the VEN is down someone switches the Heater back on at the panel.
    platform.rpc("platform.driver", "set_point", "campus/building/sim", "Heater_enabled", True)
    t_start = time.time()
    platform.vctl("start", uuid)
    # The VEN re-asserts its shed set as it starts (from its store), not when a reading shows the
    # Heater on: the "resume" write is the proof. Its delay is printed, not asserted (a slow machine
    # is not a defect); bench/README.md has the figure.
    resumed = backend.wait_json(TOPICS.telemetry, lambda d: d.get("type") == "actuation" and d.get("reason") == "resume"
                                and d.get("event_id") == f"evt-{c}", timeout=60)
    assert resumed["writes"].get("Heater") is False
    print(f"shed re-applied {resumed['ts'] - t_start:.2f} s after 'vctl start' was called")
    wait_until(lambda: not enabled(platform, "Heater_enabled"), 30, 0.3, "Heater off again after the restart")
    assert platform.rpc("ven.agent", "get_status")["active_event"]["event_id"] == f"evt-{c}"
    restore_idle(platform)


def test_ven_down_through_the_event_end_restores_and_reports(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    c = send_event(backend, 2.0, 4)
    ack_for(backend, c)
    uuid = _uuid(platform, "ven.agent")
    platform.vctl("stop", uuid)
    time.sleep(5)  # the event ends while the VEN is down
    assert not enabled(platform, "Heater_enabled")
    platform.vctl("start", uuid)
    wait_until(lambda: enabled(platform, "Heater_enabled"), 20, 0.5, "restored after restart")
    report = backend.wait_json(TOPICS.ack, lambda d: d.get("type") == "event_report"
                               and d.get("event_id") == f"evt-{c}", timeout=30)
    assert report["state"] == "completed"


def test_broker_down_for_the_whole_event_restores_on_local_time(
        platform: Platform, broker: LocalBroker, durable_backend: Backend) -> None:
    restore_idle(platform)
    c = send_event(durable_backend, 2.0, 5)
    ack = ack_for(durable_backend, c)
    end_ts = ack["end_ts"]
    broker.kill()
    try:
        wait_until(lambda: enabled(platform, "Heater_enabled"), 20, 0.3, "restore without any cloud")
    finally:
        broker.restart()
    # The actuation record (forwarded after reconnect) carries the VEN's local time of the restore.
    restore_rec = durable_backend.wait_json(
        TOPICS.telemetry, lambda d: d.get("type") == "actuation" and d.get("reason") == "restore"
        and d.get("event_id") == f"evt-{c}", timeout=60)
    # At the end, not at the reconnect: restore jitter (1 s) + a tick, with room for a slow machine.
    assert end_ts <= restore_rec["ts"] <= end_ts + 1.0 + 2.0
    report = durable_backend.wait_json(TOPICS.ack, lambda d: d.get("type") == "event_report"
                                       and d.get("event_id") == f"evt-{c}", timeout=60)
    assert report["ended_by"] == "schedule"


def test_ven_restarted_while_the_bridge_is_down_loses_nothing(platform: Platform, backend: Backend) -> None:
    """The VEN's journal is on disk: what it published before its own restart, while the bridge
    was down, still reaches the cloud when the bridge comes back."""
    t0 = time.time()
    wait_readings(backend, t0, 2)
    bridge, ven = _uuid(platform, "ven.bridge"), _uuid(platform, "ven.agent")
    platform.vctl("stop", bridge)
    time.sleep(3)  # readings the bridge does not see
    t_ven_stop = time.time()
    platform.vctl("stop", ven)
    platform.vctl("start", ven)
    time.sleep(2)
    platform.vctl("start", bridge)
    wait_until(lambda: any(r["ts"] > time.time() - 1.5 for r in readings(backend, t0)), 40, 0.5,
               "readings after the restarts")

    def before_stop() -> list[dict]:
        return [r for r in readings(backend, t0) if r["ts"] <= t_ven_stop]

    def complete(rs: list[dict]) -> bool:
        return bool(rs) and not _reading_ts_gaps(rs) and max(r["ts"] for r in rs) >= t_ven_stop - MAX_READING_GAP_SEC

    # The catch-up and live readings interleave on the way out: wait for the first, then judge.
    try:
        wait_until(lambda: complete(before_stop()), 30, 0.5, "the readings from before the VEN stopped")
    except TimeoutError:
        pass  # the asserts below say what is missing
    rs = before_stop()
    assert max(r["ts"] for r in rs) >= t_ven_stop - MAX_READING_GAP_SEC, "the last readings before the VEN stopped"
    assert not _reading_ts_gaps(rs), f"readings lost while the bridge was down: {_reading_ts_gaps(rs)}"
    assert not seq_gaps([r["seq"] for r in readings(backend, t0)])
