"""Command parsing and rejection: precise reasons, no state change, never raises."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from core_support import T0, THING, Building, building_config, event_cmd, make_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ven_common.contract import AWS_MAX_PAYLOAD_BYTES, BusTopics, RejectReason

from venagent.core.commands import CancelCommand, EventCommand, Rejection, StatusCommand, parse_command

CFG = building_config()


def _reject(raw: Any) -> Rejection:
    result = parse_command(raw, CFG, T0)
    assert isinstance(result, Rejection), result
    return result


def test_seed_event_command_parses_from_bytes_str_and_dict() -> None:
    cmd = {"op": "event", "correlationId": "corr-1", "venId": THING, "event_id": "evt-001", "shed_kw": 2.0, "duration_sec": 300}
    for raw in (json.dumps(cmd).encode(), json.dumps(cmd), cmd):
        assert parse_command(raw, CFG, T0) == EventCommand("corr-1", "evt-001", 2.0, 300.0, None)


def test_venid_is_optional_and_cancel_status_parse() -> None:
    assert parse_command({"op": "status", "correlationId": "c"}, CFG, T0) == StatusCommand("c")
    cmd = {"op": "cancel", "correlationId": "c", "event_id": "e", "venId": None}
    assert parse_command(cmd, CFG, T0) == CancelCommand("c", "e")


BAD_CASES = [
    (b"\xff\xfe{", RejectReason.MALFORMED_JSON, "UTF-8"),
    ("{not json", RejectReason.MALFORMED_JSON, "invalid JSON"),
    ("[" * 100_000, RejectReason.TOO_DEEP, "deeper than 8"),  # the same rule, and code, as at the bridge
    (b"x" * (AWS_MAX_PAYLOAD_BYTES + 1), RejectReason.TOO_LARGE, "limit"),
    ("[1, 2]", RejectReason.NOT_AN_OBJECT, "got list"),
    ("42", RejectReason.NOT_AN_OBJECT, "got int"),
    (12, RejectReason.NOT_AN_OBJECT, "got int"),
    ({"correlationId": "c"}, RejectReason.MISSING_FIELD, "op is required"),
    ({"op": 3, "correlationId": "c"}, RejectReason.WRONG_TYPE, "op must be a string"),
    ({"op": "explode", "correlationId": "c"}, RejectReason.UNKNOWN_OP, "op must be one of event, restore, cancel, status"),
    ({"op": "status"}, RejectReason.MISSING_FIELD, "correlationId is required"),
    ({"op": "status", "correlationId": 5}, RejectReason.WRONG_TYPE, "correlationId must be a string"),
    ({"op": "status", "correlationId": ""}, RejectReason.OUT_OF_RANGE, "correlationId must be 1..256"),
    ({"op": "status", "correlationId": "c", "venId": "other"}, RejectReason.WRONG_VEN, "venId must be 'volttron_thing'"),
    ({"op": "status", "correlationId": "c", "venId": 1}, RejectReason.WRONG_TYPE, "venId must be a string"),
    ({"op": "cancel", "correlationId": "c"}, RejectReason.MISSING_FIELD, "event_id is required"),
    (event_cmd(event_id=""), RejectReason.OUT_OF_RANGE, "event_id must be 1..128"),
    (event_cmd(event_id="x" * 129), RejectReason.OUT_OF_RANGE, "event_id must be 1..128"),
    (event_cmd(event_id=7), RejectReason.WRONG_TYPE, "event_id must be a string"),
    (event_cmd(shed_kw=-3), RejectReason.OUT_OF_RANGE, "shed_kw must be a finite number > 0 and <= 1000.0, got -3"),
    (event_cmd(shed_kw=0), RejectReason.OUT_OF_RANGE, "shed_kw must be a finite number > 0"),
    (event_cmd(shed_kw=1000.5), RejectReason.OUT_OF_RANGE, "<= 1000.0, got 1000.5"),
    (event_cmd(shed_kw=float("nan")), RejectReason.OUT_OF_RANGE, "got NaN"),
    (event_cmd(shed_kw=float("inf")), RejectReason.OUT_OF_RANGE, "got Infinity"),
    (event_cmd(shed_kw=10**400), RejectReason.OUT_OF_RANGE, "shed_kw must be a finite number"),
    (event_cmd(shed_kw=True), RejectReason.WRONG_TYPE, "got true"),
    (event_cmd(shed_kw="2"), RejectReason.WRONG_TYPE, 'got "2"'),
    (event_cmd(shed_kw=None), RejectReason.MISSING_FIELD, "shed_kw is required"),
    (event_cmd(duration_sec=0), RejectReason.OUT_OF_RANGE, "duration_sec must be a finite number > 0 and <= 86400.0"),
    (event_cmd(duration_sec=86401), RejectReason.OUT_OF_RANGE, "duration_sec"),
    (event_cmd(duration_sec=[300]), RejectReason.WRONG_TYPE, "duration_sec"),
    (event_cmd(start_ts="soon"), RejectReason.WRONG_TYPE, "start_ts must be finite epoch seconds"),
    (event_cmd(start_ts=float("nan")), RejectReason.OUT_OF_RANGE, "start_ts must be finite"),
    (event_cmd(start_ts=T0 - 300), RejectReason.OUT_OF_RANGE, "window"),
    (event_cmd(start_ts=T0 + 604801), RejectReason.OUT_OF_RANGE, "at most 604800.0 s ahead"),
]


@pytest.mark.parametrize(("raw", "code", "fragment"), BAD_CASES, ids=[f"{i}-{c[1].value}" for i, c in enumerate(BAD_CASES)])
def test_rejections_are_precise(raw: Any, code: RejectReason, fragment: str) -> None:
    rejection = _reject(raw)
    assert rejection.code is code
    assert fragment in rejection.reason


def test_past_start_within_window_is_allowed() -> None:
    result = parse_command(event_cmd(start_ts=T0 - 100, duration_sec=300), CFG, T0)
    assert isinstance(result, EventCommand) and result.start_ts == T0 - 100


def _state(engine: Any, now: float) -> Any:
    return copy.deepcopy((engine.status(now), engine.events(), sorted(engine._ctl.events)))


def test_engine_reject_ack_shape_without_correlation_id() -> None:
    engine = make_engine()
    ack, fx = engine.on_command(T0, b"\xff")
    assert ack["status"] == "rejected" and ack["correlationId"] is None and ack["venId"] == THING
    assert ack["reason_code"] == "malformed_json"
    assert fx.writes == {} and fx.of_topic(BusTopics.ACK) == [ack]


def _primed_engine() -> Any:
    engine = make_engine()
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    ack, _ = engine.on_command(T0, event_cmd("live", 2.0, 600))
    assert ack["status"] == "accepted"
    return engine


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(), st.text(max_size=6),
    st.sampled_from(["live", "evt-1", THING, "event", "cancel", "restore", "status"]),
)
near_commands = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["event", "cancel", "restore", "status", "nope"]) | field_values,
        "correlationId": st.text(min_size=1, max_size=5) | field_values,
        "venId": st.just(THING) | field_values,
        "event_id": st.sampled_from(["live", "evt-1"]) | field_values,
        "shed_kw": field_values,
        "duration_sec": field_values,
        "start_ts": st.floats(T0 - 1000, T0 + 10**6) | field_values,
    },
)
raw_inputs = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    json_values.map(json.dumps),
    json_values,
    near_commands,
    near_commands.map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_inputs)
def test_fuzz_never_raises_and_rejections_change_nothing(raw: Any) -> None:
    engine = _primed_engine()
    before = _state(engine, T0 + 1)
    ack, fx = engine.on_command(T0 + 1, raw)
    assert ack["status"] in ("accepted", "rejected")
    if ack["status"] == "rejected":
        assert fx.writes == {}
        assert fx.topics() == [BusTopics.ACK]
        assert _state(engine, T0 + 1) == before
        assert isinstance(ack["reason"], str) and ack["reason"]
