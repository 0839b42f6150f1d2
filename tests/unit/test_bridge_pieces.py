"""The bridge's pieces without a platform: journal follower, shadow reporter, status, command handling,
and a whole runtime driven through fakes (real outbox on disk, no broker: the link never starts)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
import pytest

from ven_common.contract import BusTopics

from backendbridge.bridge import CommandPipeline
from backendbridge.config import load_config
from backendbridge.errors import JournalUnavailable, VenFailed, VenUnreachable
from backendbridge.journal_follower import JournalFollower
from backendbridge.runtime import BridgeRuntime, BridgeShared
from backendbridge.shadow import DeltaOutcome
from backendbridge.shadow_reporter import ShadowReporter
from backendbridge.status import SHADOW_COUNTERS, BridgeCounters, bridge_status, shadow_counters

THING = "volttron_thing"


class MemoryCursor:
    def __init__(self, cursor: tuple[str, int] | None = None) -> None:
        self.stored = cursor

    def cursor(self) -> tuple[str, int] | None:
        return self.stored

    def set_cursor(self, cursor: tuple[str, int]) -> None:
        self.stored = cursor


def follower(store: MemoryCursor, pages: list[dict[str, Any]] | None = None,
             fail: bool = False) -> tuple[JournalFollower, list[tuple[str, Any, Any]], BridgeCounters]:
    delivered: list[tuple[str, Any, Any]] = []
    counters = BridgeCounters()
    queue = list(pages or [])

    def fetch(epoch: str, seq: int, limit: int) -> dict[str, Any]:
        if fail:
            raise JournalUnavailable("no answer")
        return queue.pop(0) if queue else {"epoch": epoch, "messages": [], "last_seq": seq}

    def deliver(topic: str, message: Any, cursor: Any) -> None:
        delivered.append((topic, message, cursor))

    return JournalFollower(store, fetch, deliver, counters, page=2), delivered, counters


# -- journal follower ------------------------------------------------------------------


def test_live_messages_in_order_pass_straight_through() -> None:
    f, out, _ = follower(MemoryCursor(("e1", 4)))
    f.accept("ven/metering", {"vepoch": "e1", "vseq": 5}, {"a": 1})
    f.queued(("e1", 5))
    f.accept("ven/metering", {"vepoch": "e1", "vseq": 6}, {"a": 2})
    assert [c for _, _, c in out] == [("e1", 5), ("e1", 6)]


def test_a_gap_is_filled_from_the_journal_and_nothing_is_delivered_twice() -> None:
    pages = [{"epoch": "e1", "messages": [[5, "ven/ack", {"x": 5}], [6, "ven/ack", {"x": 6}]], "last_seq": 7},
             {"epoch": "e1", "messages": [[7, "ven/ack", {"x": 7}]], "last_seq": 7}]
    store = MemoryCursor(("e1", 4))
    f, out, counters = follower(store, pages)

    def deliver_and_queue(topic: str, message: Any, cursor: Any) -> None:
        out.append((topic, message, cursor))
        f.queued(cursor)

    f._deliver = deliver_and_queue
    f.accept("ven/ack", {"vepoch": "e1", "vseq": 7}, {"x": 7})  # 5 and 6 were missed
    assert [c for _, _, c in out] == [("e1", 5), ("e1", 6), ("e1", 7)]
    assert counters.caught_up == 3


def test_a_new_epoch_after_a_reset_moves_the_stored_cursor() -> None:
    store = MemoryCursor(("old", 9))
    f, out, counters = follower(store, [{"epoch": "new", "messages": [], "last_seq": 3, "complete": False}])
    f.catch_up()
    assert counters.journal_resets == 1 and store.stored == ("new", 3) and f.cursor == ("new", 3)
    assert out == []


def test_an_unreachable_ven_leaves_the_cursor_and_live_messages_go_on(caplog: pytest.LogCaptureFixture) -> None:
    f, out, _ = follower(MemoryCursor(("e1", 1)), fail=True)
    f.accept("ven/metering", {"vepoch": "e1", "vseq": 9}, {})
    assert "cannot catch up with the VEN's journal (no answer)" in caplog.text
    assert out == [("ven/metering", {}, ("e1", 9))] and f.cursor == ("e1", 1)


def test_messages_without_journal_headers_carry_no_cursor() -> None:
    f, out, _ = follower(MemoryCursor(None))
    f.accept("ven/metering", {}, {"m": 1})
    f.catch_up()  # first start ever: nothing to fetch
    assert out == [("ven/metering", {"m": 1}, None)]


# -- shadow reporter -------------------------------------------------------------------


def test_reporter_echoes_what_the_ven_took_and_names_what_it_refused() -> None:
    r = ShadowReporter()
    r.note_status({"power_kw": 5.0, "shed_kw": 0.0, "active_event": None, "circuits": []})
    outcome = r.take_delta({"state": {"metering_interval_sec": 5, "circuit_priorities": {"HVAC": 1}}, "version": 7})
    assert set(outcome.change) == {"metering_interval_sec", "circuit_priorities"}
    r.settle(outcome, accepted={"metering_interval_sec": 5})
    reported = r.document({"connected": True})["state"]["reported"]
    assert reported["metering_interval_sec"] == 5 and reported["power_kw"] == 5.0
    assert reported["desired_refused"] == {"circuit_priorities": "refused by the VEN"}
    assert r.sync.version == 7


def test_reporter_unreachable_ven_refuses_every_key_and_a_versioned_document() -> None:
    r = ShadowReporter()
    r.settle(DeltaOutcome(change={"metering_interval_sec": 2}), error="timeout")
    assert r.desired_refused == {"metering_interval_sec": "VEN agent unreachable: timeout"}
    assert r.document({}, version=12)["version"] == 12
    assert r.rejected({"code": 409}) is True and r.get_accepted({"version": 13}) == 13


# -- status ----------------------------------------------------------------------------


def test_status_without_configuration_has_every_field() -> None:
    status = bridge_status(BridgeCounters(bus_skipped=2))
    assert status["connected"] is False and status["queue_depth"] == 0 and status["bus_skipped"] == 2
    assert status["endpoint"] is None and status["registration"] is None
    assert set(shadow_counters(status)) == set(SHADOW_COUNTERS)
    assert list(status)[:3] == ["connected", "endpoint", "thing"]


# -- the command pipeline's handle -----------------------------------------------------


def _raw(**fields: Any) -> bytes:
    return json.dumps({"op": "status", "correlationId": "c-1", "venId": THING, **fields}).encode()


def test_handle_queues_exactly_one_ack_per_command() -> None:
    pipe = CommandPipeline(THING, clock=lambda: 1000.0)
    acks: list[dict[str, Any]] = []
    pipe.handle(_raw(), lambda cmd: {"op": "status", "status": "accepted", "correlationId": "c-1", "source": "mqtt"},
                acks.append)
    pipe.handle(b"{not json", lambda cmd: pytest.fail("a malformed command never reaches the VEN"), acks.append)
    assert [a["status"] for a in acks] == ["accepted", "rejected"]
    assert "source" not in acks[0] and acks[0]["venId"] == THING
    assert acks[1]["reason_code"] == "malformed_json" and pipe.rejected == 1


@pytest.mark.parametrize(("error", "code"), [(VenUnreachable("down"), "not_ready"), (VenFailed("boom"), "internal")])
def test_handle_maps_ven_failures_to_their_reject_code(error: Exception, code: str) -> None:
    pipe = CommandPipeline(THING, clock=lambda: 1000.0)
    acks: list[dict[str, Any]] = []

    def call_ven(cmd: dict[str, Any]) -> Any:
        raise error

    pipe.handle(_raw(), call_ven, acks.append)
    assert acks[0]["status"] == "rejected" and acks[0]["reason_code"] == code and acks[0]["correlationId"] == "c-1"


# -- a runtime over fakes --------------------------------------------------------------


class FakeVen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.published: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        self.calls.append((method, args))
        if method == "apply_shadow_config":
            return dict(args[0])
        if method == "get_journal_since":
            return {"epoch": args[0], "messages": [], "last_seq": args[1]}
        raise AssertionError(method)

    def command(self, command: dict[str, Any], timeout: float) -> Any:
        self.calls.append(("handle_command", (command,)))
        return {"op": command["op"], "status": "accepted", "correlationId": command["correlationId"]}

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.published.append((topic, message))


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    cfg = load_config({"shadow_debounce_sec": 0.01}, env={})
    ven, shared = FakeVen(), BridgeShared()
    rt = BridgeRuntime(cfg, tmp_path, ven, shared)
    yield rt, ven, shared
    rt.outbox.close()


def _queued(rt: BridgeRuntime) -> list[tuple[str, dict[str, Any]]]:
    return [(item.topic, item.payload) for item in rt.outbox.peek(100)]


def test_runtime_routes_bus_messages_and_moves_the_cursor(runtime: Any) -> None:
    rt, _ven, shared = runtime
    rt.journal.accept(BusTopics.METERING, {"vepoch": "e", "vseq": 1}, {"ts": 1.0, "power_kw": 2.0})
    rt.journal.accept("ven/unknown", {"vepoch": "e", "vseq": 2}, {"x": 1})
    assert [t for t, _ in _queued(rt)] == ["volttron/metering"]
    assert _queued(rt)[0][1]["venId"] == THING
    assert rt.outbox.cursor() == ("e", 2) and shared.counters.bus_skipped == 1


def _until(predicate: Any, timeout: float = 5.0) -> Any:
    """Yield to the runtime's greenlets until ``predicate()`` holds (an event, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out waiting"
        gevent.sleep(0.001)
    return value


def test_runtime_command_is_acked_on_disk_then_pubacked(runtime: Any) -> None:
    rt, ven, shared = runtime
    on_disk_at_puback: list[list[str]] = []   # what the outbox held when the PUBACK was released
    rt.on_command(_raw(), dup=True, done=lambda: on_disk_at_puback.append([t for t, _ in _queued(rt)]))
    loop = gevent.spawn(rt._command_loop)
    try:
        _until(lambda: on_disk_at_puback)
    finally:
        loop.kill()
    assert ven.calls[0][0] == "handle_command"
    assert on_disk_at_puback == [[f"ven/ack/{THING}"]], "the PUBACK went before the ack was on disk"
    assert shared.counters.redeliveries == 1


def test_runtime_shadow_delta_goes_to_the_ven_and_is_reported_back(runtime: Any) -> None:
    rt, ven, _shared = runtime
    rt.on_shadow_delta({"state": {"metering_interval_sec": 5}, "version": 3})
    shadow = _until(lambda: [p for t, p in _queued(rt) if t.endswith("/shadow/update")])
    assert ("apply_shadow_config", ({"metering_interval_sec": 5},)) in ven.calls
    assert shadow[-1]["state"]["reported"]["metering_interval_sec"] == 5


def test_runtime_status_is_debounced_into_one_shadow_update(runtime: Any) -> None:
    rt, _ven, _shared = runtime
    for kw in (1.0, 2.0, 3.0):
        rt.journal.accept(BusTopics.STATUS, {}, {"power_kw": kw, "circuits": []})
    shadow = _until(lambda: [p for t, p in _queued(rt) if t.endswith("/shadow/update")])
    assert len(shadow) == 1 and shadow[0]["state"]["reported"]["power_kw"] == 3.0


def test_a_refused_subscription_is_not_reported_as_connected(tmp_path: Path) -> None:
    """A broker (or an AWS policy) that refuses the command topic leaves the bridge able to publish but deaf to
    commands: the link says so (status: connected false, the reason in last_error), it does not say connected."""
    from types import SimpleNamespace

    from ven_common.contract import MqttTopics

    from backendbridge.mqtt_link import CloudLink, LinkSettings
    from backendbridge.status import _link_part

    class Listener:
        def __init__(self) -> None:
            self.up: list[bool] = []

        def on_connected(self, session_present: bool) -> None:
            self.up.append(session_present)

    settings = LinkSettings(thing=THING, endpoint="localhost", port=8883, ca=tmp_path / "ca.pem",
                            cert=tmp_path / "c.crt", key=tmp_path / "c.key", topics=MqttTopics(THING))
    listener = Listener()
    link = CloudLink(settings, listener)  # type: ignore[arg-type]
    granted, refused = SimpleNamespace(is_failure=False), SimpleNamespace(is_failure=True)
    client = SimpleNamespace(subscribe=lambda topics: (0, 7))
    link._on_connect(client, None, SimpleNamespace(session_present=False), granted, None)
    assert link.connected and not link.subscribed    # not yet: the SUBACK has not come
    link._on_subscribe(client, None, 7, [refused, granted, granted, granted], None)
    assert link.connected and not link.subscribed
    assert link.last_error is not None and f"ven/cmd/{THING}" in link.last_error and "refused" in link.last_error
    assert _link_part(None, link)["connected"] is False
    link._on_connect(client, None, SimpleNamespace(session_present=True), granted, None)
    link._on_subscribe(client, None, 7, [granted] * 4, None)
    assert link.subscribed and _link_part(None, link)["connected"] is True
