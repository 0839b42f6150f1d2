from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ven_common.contract import RejectReason, event_command
from ven_common.transport import nesting_depth_exceeds

from backendbridge.envelope import EnvelopeChecker
from venagent.core.commands import decode_command

THING = "volttron_thing"


def checker() -> EnvelopeChecker:
    return EnvelopeChecker(THING, clock=lambda: 1_700_000_000.0)


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_seed_command_is_accepted() -> None:
    cmd = event_command(correlation_id="c1", ven_id=THING, event_id="e1", shed_kw=2.0, duration_sec=300)
    verdict = checker().check(raw(cmd))
    assert verdict.accepted and verdict.command == cmd and verdict.correlation_id == "c1"


def test_venid_is_optional() -> None:
    assert checker().check(raw({"op": "restore", "correlationId": "r1"})).accepted


def _code(payload: bytes) -> tuple[str | None, dict]:
    v = checker().check(payload)
    assert not v.accepted and v.reject is not None
    assert v.reject["status"] == "rejected" and v.reject["reason"]
    return v.reject["reason_code"], v.reject


def test_each_transport_reject_reason() -> None:
    assert _code(b"x" * (128 * 1024 + 1))[0] == RejectReason.TOO_LARGE
    assert _code(b"\xff\xfe{}")[0] == RejectReason.MALFORMED_JSON
    assert _code(b"{not json")[0] == RejectReason.MALFORMED_JSON
    code, ack = _code(b'{"op":"restore","correlationId":"c","x":NaN}')
    assert code == RejectReason.MALFORMED_JSON and ack["correlationId"] == "c"
    assert _code(b"[1,2]")[0] == RejectReason.NOT_AN_OBJECT


def test_field_rules_are_the_vens_not_the_bridges() -> None:
    """One owner per rule: op, correlationId and venId are checked by the VEN's core only, so a
    command gets the same reason code over MQTT and over RPC."""
    for obj in ({"op": "restore"}, {"op": "restore", "correlationId": 5}, {"correlationId": "c"},
                {"op": "explode", "correlationId": "c9"}, {"op": "restore", "correlationId": "c2", "venId": "x"}):
        assert checker().check(raw(obj)).command == obj


@given(st.binary(max_size=512))
def test_bridge_and_core_give_the_same_transport_reason(data: bytes) -> None:
    verdict = checker().check(data)
    core = decode_command(data)
    if verdict.accepted:
        assert core == verdict.command
    else:
        assert getattr(core, "code", None) == verdict.reason_code


def test_depth_limit_without_recursion_blowup() -> None:
    ok = {"op": "event", "correlationId": "c", "a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
    assert checker().check(raw(ok)).accepted  # depth 8
    deep = b"[" * 100_000 + b"]" * 100_000
    assert _code(deep)[0] == RejectReason.TOO_LARGE or _code(deep)[0] == RejectReason.TOO_DEEP
    deep_small = b'{"op":"event","correlationId":"c","a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert _code(deep_small)[0] == RejectReason.TOO_DEEP
    # Brackets inside strings do not count, escaped quotes do not end strings.
    assert not nesting_depth_exceeds(json.dumps({"s": "[[[[[[[[[[[[\\\"[[[[["}), 2)
    assert nesting_depth_exceeds('{"a":{"b":{"c":1}}}', 2)


def test_pathological_escapes_are_linear() -> None:
    import time

    payload = b'"' + b'\\"' * 60_000
    start = time.perf_counter()
    _code(payload)
    assert time.perf_counter() - start < 1.0


def test_rejections_are_counted_by_reason() -> None:
    c = checker()
    c.check(b"[]")
    c.check(b"[]")
    c.check(b"{")
    assert c.rejected == {"not_an_object": 2, "malformed_json": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    v = checker().check(data)
    assert v.accepted or (v.reject is not None and v.reject["reason"] and v.reason_code is not None)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises(value: object) -> None:
    v = checker().check(json.dumps(value).encode())
    if v.accepted:
        assert isinstance(value, dict)
    else:
        assert v.reject is not None and v.reject["reason_code"]
