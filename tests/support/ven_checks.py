"""What integration tests observe, as a backend and an operator would: driver points, MQTT traffic."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ven_common.contract import BusTopics, MqttTopics, event_command, seed_reading_problem

from tests.support.backend import Backend
from tests.support.system import Platform, wait_until

THING = "volttron_thing"
TOPICS = MqttTopics(THING)
DEVICE = "campus/building/panel"  # the default building: the Modbus panel (tests/support/device.py)
SIM_DEVICE = "campus/building/sim"
SHEDDABLE_POINTS = ("HVAC_enabled", "Heater_enabled", "Water_Heater_enabled")


def cid() -> str:
    return f"corr-{uuid.uuid4().hex[:12]}"


# The device the VEN's circuits are on now: the Modbus panel, or the simulation while a test runs
# parametrised over both buildings (the `building` fixture switches the VEN's config).
CURRENT = {"device": DEVICE}


def enabled(platform: Platform, point: str) -> bool:
    return bool(platform.rpc("platform.driver", "get_point", CURRENT["device"], point))


def switch_building(platform: Platform, device: str) -> None:
    """Point the VEN's circuits and meter at ``device`` (config store: a live reconfigure)."""
    import json
    import tempfile

    config = json.loads(platform.vctl("config", "get", "ven.agent", "config").stdout)
    for circuit in config["circuits"]:
        circuit["device"] = device
    if config.get("meter"):
        config["meter"]["device"] = device
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=platform.vhome, delete=False) as fh:
        json.dump(config, fh)
    platform.vctl("config", "store", "ven.agent", "config", fh.name)
    CURRENT["device"] = device

    def fresh_from_it() -> bool:
        status = platform.rpc("ven.agent", "get_status")
        return status.get("quality") == "good" and status.get("power_kw") is not None
    wait_until(fresh_from_it, 30, 0.5, f"the VEN reading {device}")


def all_enabled(platform: Platform, points: tuple[str, ...] = SHEDDABLE_POINTS) -> bool:
    return all(enabled(platform, p) for p in points)


def readings(backend: Backend, since: float = 0.0) -> list[dict[str, Any]]:
    """Every metering reading the backend got, read the way the seed's backend reads them: one
    reading per message. A message that is not one seed-shaped reading fails the test (a backend
    built on the operations guide would lose it)."""
    out: list[dict[str, Any]] = []
    for msg in backend.on_topic(TOPICS.metering):
        if msg.at < since:
            continue
        body = msg.json()
        problem = seed_reading_problem(body)
        assert problem is None, f"volttron/metering carried what a seed backend cannot store ({problem}): {msg.payload[:300]!r}"
        out.append(body)
    return out


JournalMark = tuple[str, int]


def journal_mark(platform: Platform) -> JournalMark:
    """Where the VEN's journal (everything it published, numbered, on disk) stands now."""
    j = platform.rpc("ven.agent", "get_journal_since", None, 0, 1)
    return j["epoch"], j["last_seq"]


def journal_readings(platform: Platform, mark: JournalMark, until_ts: float) -> list[dict[str, Any]]:
    """The metering readings the VEN published after ``mark`` and up to ``until_ts``: the
    reference a backend's copy is judged against (timestamps alone cannot tell a skipped reading
    from a lost one)."""
    epoch, seq = mark
    out: list[dict[str, Any]] = []
    while True:
        j = platform.rpc("ven.agent", "get_journal_since", epoch, seq, 2000)
        assert j["epoch"] == epoch, "the VEN's journal was reset"
        for entry_seq, topic, message in j["messages"]:
            if entry_seq > seq and topic == BusTopics.METERING and message["ts"] <= until_ts:
                out.append(message)
        if not j["messages"] or j["messages"][-1][0] >= j["last_seq"]:
            return out
        seq = j["messages"][-1][0]


def missing_readings(platform: Platform, mark: JournalMark, backend: Backend, since: float,
                     until_ts: float) -> list[float]:
    """Timestamps of readings the VEN published (after ``mark``, up to ``until_ts``) that the
    backend never received."""
    got = {r["ts"] for r in readings(backend, since)}
    return [m["ts"] for m in journal_readings(platform, mark, until_ts) if m["ts"] not in got]


def wait_readings(backend: Backend, since: float, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    return wait_until(lambda: (r := readings(backend, since)) and len(r) >= count and r, timeout, 0.2,
                      f"{count} readings on {TOPICS.metering}")


def ack_for(backend: Backend, correlation_id: str, timeout: float = 15) -> dict[str, Any]:
    return backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == correlation_id
                             and d.get("type") != "event_report", timeout=timeout)


def seq_gaps(seqs: list[int]) -> list[tuple[int, int]]:
    """Missing ranges in a set of sequence numbers (duplicates allowed: the backend drops them)."""
    ordered = sorted(set(seqs))
    return [(a + 1, b - 1) for a, b in itertools.pairwise(ordered) if b != a + 1]


def restore_idle(platform: Platform) -> None:
    """No event, every sheddable circuit on, and the VEN's readings already showing it (the
    driver publishes every second: the VEN's view lags the device by up to two)."""
    platform.rpc("ven.agent", "restore")
    wait_until(lambda: all_enabled(platform), 30, 0.5, "circuits restored")

    def ven_sees_idle() -> bool:
        status = platform.rpc("ven.agent", "get_status")
        on = {c["name"]: c["enabled"] for c in status["circuits"]}
        return status["active_event"] is None and all(on.get(n) for n in ("HVAC", "Heater", "Water Heater"))
    wait_until(ven_sees_idle, 15, 0.5, "the VEN seeing the building idle")


def now() -> float:
    return time.time()


def send_event(backend: Backend, shed_kw: float, duration_sec: float, name: str | None = None) -> str:
    """Publish an event command as the backend does; returns its correlationId (event id ``evt-<cid>``)."""
    correlation_id = cid()
    backend.publish(TOPICS.cmd, event_command(correlation_id=correlation_id, ven_id=THING,
                                              event_id=name or f"evt-{correlation_id}", shed_kw=shed_kw,
                                              duration_sec=duration_sec))
    return correlation_id


def handled_so_far(backend: Backend, timeout: float = 30) -> None:
    """Wait until the VEN has answered everything published before: commands are handled in order."""
    marker = cid()
    backend.publish(TOPICS.cmd, {"op": "status", "correlationId": marker, "venId": THING})
    backend.wait_json(TOPICS.ack, lambda d: d.get("correlationId") == marker, timeout=timeout)


def thing_client(certs: Path, port: int, cert_name: str, client_id: str) -> mqtt.Client:
    """A connected MQTT client holding one of the dev PKI's certificates (a device, not the backend)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / f"{cert_name}.crt"),
                   keyfile=str(certs / f"{cert_name}.key"))
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: rc.is_failure or connected.set()
    client.connect("localhost", port)
    client.loop_start()
    if not connected.wait(10):
        client.loop_stop()
        raise TimeoutError(f"{cert_name} could not connect to the broker")
    return client


def subscribe_and_wait(client: mqtt.Client, topics: list[tuple[str, int]], timeout: float = 10) -> None:
    """Subscribe and wait for the SUBACK (paho's subscribe only sends the request)."""
    acked: set[int] = set()
    cond = threading.Condition()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: Any, p: Any = None) -> None:
        with cond:  # the SUBACK may come back before subscribe() has returned its mid
            acked.add(mid)
            cond.notify_all()

    client.on_subscribe = on_subscribe
    _, mid = client.subscribe(topics)
    with cond:
        if not cond.wait_for(lambda: mid in acked, timeout):
            raise TimeoutError(f"no SUBACK for {topics}")
