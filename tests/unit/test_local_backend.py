"""The local backend stand-in's rules, without a broker: ingestion as the seed's consumer, the
EventCommandService's choices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "local_backend"))

from local_backend import dispatch, ingest  # noqa: E402
from local_backend.store import Store  # noqa: E402

T0 = 1_800_000_000.0


def reading(seq: int | None, **extra: object) -> bytes:
    body = {"venId": "ven_a", "ts": T0 + (seq or 0), "power_kw": 9.9, "baseline_kw": 10.0, "shed_kw": 0.1,
            "active_event": None, "circuits": [{"name": "HVAC", "enabled": True, "current_kw": 5.5}], **extra}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


def test_readings_are_stored_one_per_message_auto_registering_and_dropping_duplicates(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.sqlite")
    assert ingest.handle(store, ingest.EVERY_THING.metering, reading(1), T0) == "stored"
    assert ingest.handle(store, ingest.EVERY_THING.metering, reading(1), T0 + 1) == "duplicate"
    assert ingest.handle(store, ingest.EVERY_THING.metering, reading(2), T0 + 1) == "stored"
    assert store.ven("ven_a")["auto_registered"] == 1
    assert [r["seq"] for r in store.readings("ven_a")] == [1, 2]
    assert store.counters() == {"auto_registered": 1, "readings": 2, "duplicates": 1}


def test_what_is_not_a_seed_reading_is_kept_with_its_reason(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.sqlite")
    batch = json.dumps({"venId": "ven_a", "batch": True, "readings": [json.loads(reading(1))]}).encode()
    assert ingest.handle(store, ingest.EVERY_THING.metering, batch, T0).startswith("rejected: a batch")
    assert ingest.handle(store, ingest.EVERY_THING.metering, b"\xff{", T0).startswith("rejected: not JSON")
    assert ingest.handle(store, ingest.EVERY_THING.metering, json.dumps({"ts": 1}).encode(), T0) == "rejected: no venId"
    assert next(r["reason"] for r in store.rejected()).startswith("a batch") and len(store.rejected()) == 3
    assert store.reading_count() == 0


def test_acks_are_stored_against_their_command_and_the_will_takes_a_ven_offline(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.sqlite")
    store.register("ven_a", "VEN ven_a", "online", 1.0, 2.0, T0)
    ack = {"op": "event", "status": "accepted", "correlationId": "c1", "event_id": "e1", "seq": 4}
    assert ingest.handle(store, "ven/ack/ven_a", json.dumps(ack).encode(), T0) == "stored"
    assert store.acks("c1")[0]["doc"] == ack
    assert ingest.online(store.ven("ven_a"), T0 + 1, 30)
    assert ingest.handle(store, "ven/telemetry/ven_a", b'{"online": false, "reason": "connection_lost"}', T0 + 2) == "offline"
    assert not ingest.online(store.ven("ven_a"), T0 + 3, 30)
    ingest.handle(store, ingest.EVERY_THING.metering, reading(9), T0 + 4)
    assert ingest.online(store.ven("ven_a"), T0 + 5, 30)
    assert not ingest.online(store.ven("ven_a"), T0 + 40, 30), "telemetry too old"


def test_event_command_service_sends_active_events_to_online_vens_once_per_revision(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.sqlite")
    store.register("ven_a", "VEN ven_a", "online", None, None, T0)
    store.register("ven_b", "VEN ven_b", "online", None, None, T0)
    store.seen("ven_a", T0)  # ven_b never sent anything: offline
    store.add_event("e1", ["ven_a", "ven_b"], 2.0, T0 + 120, T0 + 420, "active", T0)
    sent: list[tuple[str, dict]] = []

    def publish(topic: str, command: dict) -> bool:
        sent.append((topic, command))
        return True
    assert dispatch.run_once(store, T0 + 60, publish, 300) == 0, "not before startTime"
    assert dispatch.run_once(store, T0 + 125, publish, 300) == 1
    topic, command = sent[0]
    assert topic == "ven/cmd/ven_a" and command["op"] == "event" and command["shed_kw"] == 2.0
    assert command["start_ts"] == T0 + 120 and command["duration_sec"] == 300
    assert dispatch.run_once(store, T0 + 130, publish, 300) == 0, "sent once"
    store.update_event("e1", T0 + 131, shed_kw=3.0)
    assert dispatch.run_once(store, T0 + 135, publish, 300) == 1 and sent[-1][1]["shed_kw"] == 3.0
    assert sent[-1][1]["correlationId"] != command["correlationId"]
    store.update_event("e1", T0 + 140, status="cancelled")
    assert dispatch.run_once(store, T0 + 145, publish, 300) == 1
    assert sent[-1][1]["op"] == "cancel" and sent[-1][1]["event_id"] == "e1"
    assert dispatch.run_once(store, T0 + 150, publish, 300) == 0
    assert dispatch.run_once(store, T0 + 500, publish, 300) == 0


def test_shadow_update_delta_get_and_aws_error_codes() -> None:
    from local_backend.shadow_book import ShadowBook

    book = ShadowBook()
    first = dict(book.update("t", json.dumps({"state": {"reported": {"power_kw": 9.0, "metering_interval_sec": 1}},
                                               "clientToken": "a"}).encode(), 100))
    assert first["update/accepted"]["version"] == 1 and first["update/accepted"]["clientToken"] == "a"
    assert "update/delta" not in first and first["update/documents"]["previous"] is None
    # The backend sets a desired value: accepted, and a delta for the device.
    out = dict(book.update("t", json.dumps({"state": {"desired": {"metering_interval_sec": 5}}}).encode(), 101))
    assert out["update/delta"]["state"] == {"metering_interval_sec": 5} and out["update/delta"]["version"] == 2
    got = dict(book.get("t", b'{"clientToken": "g"}', 102))["get/accepted"]
    assert got["state"]["delta"] == {"metering_interval_sec": 5} and got["clientToken"] == "g"
    assert got["metadata"]["desired"]["metering_interval_sec"] == {"timestamp": 101}
    # The device reports the value: no delta any more.
    book.update("t", json.dumps({"state": {"reported": {"metering_interval_sec": 5}}}).encode(), 103)
    assert "delta" not in dict(book.get("t", b"", 104))["get/accepted"]["state"]
    # A stale version is refused with 409 and changes nothing; the right one is taken.
    stale = dict(book.update("t", json.dumps({"state": {"reported": {"x": 1}}, "version": 1}).encode(), 105))
    assert stale["update/rejected"]["code"] == 409 and book.shadows["t"].version == 3
    assert "update/accepted" in dict(book.update("t", json.dumps({"state": {"reported": {"x": 1}}, "version": 3}).encode(), 106))
    # A null deletes a key; bad documents get AWS's codes.
    book.update("t", json.dumps({"state": {"reported": {"x": None}}}).encode(), 107)
    assert "x" not in book.shadows["t"].reported
    assert dict(book.update("t", b"{not json", 108))["update/rejected"]["code"] == 400
    assert dict(book.update("t", b'{"state": 3}', 108))["update/rejected"]["code"] == 400
    big = {"state": {"reported": {"blob": "x" * 9000}}}
    assert dict(book.update("t", json.dumps(big).encode(), 109))["update/rejected"]["code"] == 413
    assert dict(book.get("nobody", b"", 110))["get/rejected"]["code"] == 404
    assert dict(book.delete("t", b"", 111))["delete/accepted"]["version"] == 5
    assert dict(book.get("t", b"", 112))["get/rejected"]["code"] == 404
