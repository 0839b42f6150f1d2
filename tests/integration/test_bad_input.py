"""Hypothesis-generated and hand-picked bad commands over MQTT, as a hostile or buggy backend would
send them: 0 agent crashes, 0 driver writes, a reasoned reject whenever a correlationId is readable.
1,000 commands in the normal run, 10,000 with VEN_LONG_FUZZ=1."""

from __future__ import annotations

import json
import math
import os
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from ven_common.contract import AWS_MAX_PAYLOAD_BYTES

from tests.support.backend import Backend
from tests.support.system import Platform, wait_until
from tests.support.ven_checks import THING, TOPICS, cid, handled_so_far, restore_idle

pytestmark = pytest.mark.platform

COUNT = 10_000 if os.environ.get("VEN_LONG_FUZZ") else 1_000
MAX_SHED_KW = 1000.0
MAX_DURATION_SEC = 86400
KNOWN_OPS = {"event", "restore", "cancel", "status"}
CHUNK = 250
# Fresh cases each run, yet any failure can be replayed: VEN_FUZZ_SEED=<the seed in the failure>.
FUZZ_SEED = int(os.environ.get("VEN_FUZZ_SEED") or random.SystemRandom().randrange(2**32))

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
bad_kw = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=MAX_SHED_KW * 1.001,
                   allow_nan=False), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                   st.integers(max_value=0), st.integers(min_value=10**7), junk)
bad_duration = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=MAX_DURATION_SEC + 1.0,
                         allow_nan=False), st.just(math.nan), st.integers(min_value=MAX_DURATION_SEC + 1), junk)
bad_event_id = st.one_of(st.just(""), st.text(min_size=129, max_size=300), st.integers(), st.none(),
                         st.booleans(), st.lists(st.text(max_size=3), max_size=2))
bad_op = st.one_of(st.text(max_size=12).filter(lambda s: s not in KNOWN_OPS), st.integers(), st.none(),
                   st.booleans(), st.lists(st.just("event"), max_size=2))
bad_ven = st.one_of(st.text(min_size=1, max_size=40).filter(lambda s: s != THING), st.integers(), st.booleans(),
                    st.lists(st.just(THING), min_size=1, max_size=2))
bad_start = st.one_of(st.just(math.nan), st.floats(min_value=4e9, allow_nan=False, allow_infinity=False),
                      junk.filter(lambda v: v is not None))  # null start_ts means "now": a valid event

MUTATIONS = st.one_of(
    st.tuples(st.just("shed_kw"), bad_kw), st.tuples(st.just("duration_sec"), bad_duration),
    st.tuples(st.just("event_id"), bad_event_id), st.tuples(st.just("op"), bad_op),
    st.tuples(st.just("venId"), bad_ven), st.tuples(st.just("start_ts"), bad_start),
    st.tuples(st.sampled_from(["shed_kw", "duration_sec", "event_id", "op"]), st.just("<missing>")),
    st.tuples(st.just("correlationId"), st.one_of(st.integers(), st.just(""), st.none(), st.lists(st.just("x")))),
)


def _valid(correlation_id: str) -> dict[str, Any]:
    return {"op": "event", "correlationId": correlation_id, "venId": THING, "event_id": "fuzz-evt",
            "shed_kw": 1.0, "duration_sec": 60}


def _encode(cmd: dict[str, Any]) -> bytes:
    return json.dumps(cmd).encode()  # NaN/Infinity become the non-JSON literals a buggy sender writes


RAW = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.strip().startswith(b"{")),
    st.text(max_size=64).map(str.encode),
    st.integers(min_value=10, max_value=200).map(lambda d: ("[" * d + "]" * d).encode()),
    st.just(b"\xff\xfe{\"op\":\"event\"}"),
)


def _generate(n: int) -> list[bytes | tuple[str, dict[str, Any]]]:
    """n bad commands drawn by hypothesis: mostly one-field mutations of a valid event, some raw junk."""
    out: list[bytes | tuple[str, dict[str, Any]]] = []

    @seed(FUZZ_SEED)
    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(MUTATIONS, MUTATIONS, MUTATIONS, RAW))
    def draw(item: Any) -> None:
        if isinstance(item, bytes):
            out.append(item)
            return
        field, value = item
        c = f"fz-{len(out)}-{cid()}"
        cmd = _valid(c)
        if value == "<missing>":
            del cmd[field]
        else:
            cmd[field] = value
        out.append((c if field != "correlationId" else "", cmd))

    draw()
    return out[:n]


def test_fuzzed_commands_change_nothing_and_get_reasoned_rejects(platform: Platform, backend: Backend) -> None:
    restore_idle(platform)
    pids = {i: platform.agent_pid(i) for i in ("ven.agent", "ven.bridge", "platform.driver")}
    before = platform.rpc("ven.agent", "get_status")
    cases = _generate(COUNT)
    # Over 128 KB the broker itself drops the publish (as AWS IoT does): no ack can come back.
    cases.append(("", dict(_valid("hand-oversize"), pad="x" * (AWS_MAX_PAYLOAD_BYTES + 10))))
    deep = f"hand-deep-{cid()}"
    cases.append((deep, dict(_valid(deep), nest=json.loads("[" * 50 + "]" * 50))))
    t0 = time.time()
    expected: set[str] = set()
    # In chunks, as a backend would send them: acks leave at <= 50 publishes/s (AWS allows 100)
    # and the bridge buffers at most 1,000 commands.
    for start in range(0, len(cases), CHUNK):
        for case in cases[start:start + CHUNK]:
            if isinstance(case, bytes):
                backend.publish(TOPICS.cmd, case)
                continue
            correlation_id, cmd = case
            backend.publish(TOPICS.cmd, _encode(cmd))
            if correlation_id:
                expected.add(correlation_id)
        handled_so_far(backend, timeout=CHUNK / 10 + 30)

    acks = {}
    for m in backend.on_topic(TOPICS.ack):
        if m.at >= t0:
            d = m.json()
            acks[d.get("correlationId")] = d
    missing = expected - set(acks)
    replay = f"(replay: VEN_FUZZ_SEED={FUZZ_SEED})"
    assert not missing, f"{len(missing)} bad commands got no ack, e.g. {sorted(missing)[:3]} {replay}"
    wrong = [a for c, a in acks.items() if c in expected and (a["status"] != "rejected" or not a.get("reason"))]
    assert not wrong, f"accepted or unreasoned: {wrong[:3]} {replay}"

    # Judged on the VEN's clock: a record of a restore made before t0 may still be on its way.
    actuations = [d for d in (m.json() for m in backend.on_topic(TOPICS.telemetry) if m.at >= t0)
                  if d.get("type") == "actuation" and d.get("ts", 0) >= t0]
    assert not actuations, f"driver writes during the fuzz run: {actuations[:2]} {replay}"
    after = platform.rpc("ven.agent", "get_status")
    assert after["active_event"] is None
    assert [(c["name"], c["enabled"]) for c in after["circuits"]] == [(c["name"], c["enabled"])
                                                                     for c in before["circuits"]]
    assert {i: platform.agent_pid(i) for i in pids} == pids, "an agent died during the fuzz run"
    status = platform.rpc("ven.bridge", "get_status")
    assert status["rejected"] > 0 and status["connected"]


def test_non_utf8_is_counted_and_refused_before_the_bus(platform: Platform, backend: Backend) -> None:
    before = platform.rpc("ven.bridge", "get_status")
    backend.publish(TOPICS.cmd, b"\xc3\x28" + b'{"op":"event"}')
    wait_until(lambda: platform.rpc("ven.bridge", "get_status")["rejected_by_reason"].get("malformed_json", 0)
               > before["rejected_by_reason"].get("malformed_json", 0), 15, 0.5, "the non-UTF-8 command counted")


@pytest.mark.parametrize("kind", ["shadow", "STATUS", "provision", "status ", ""])
def test_an_unknown_kind_is_rejected_as_unknown_op_on_every_path(platform: Platform, backend: Backend,
                                                                kind: str) -> None:
    """Never answered as another kind (the old fall-through made any unhandled kind a status): over MQTT
    (backend → bridge → VEN) and over VIP (the operator tool), the same reject with the same reason code."""
    cloud_cid = f"unknown-{cid()}"
    backend.publish(TOPICS.cmd, {"op": kind, "correlationId": cloud_cid, "venId": THING})
    ack = backend.wait_json(TOPICS.ack, lambda a: a.get("correlationId") == cloud_cid, 20)
    assert ack["status"] == "rejected" and ack["reason_code"] == "unknown_op", ack
    assert "status_snapshot" not in ack and "op must be one of" in ack["reason"], ack
    local_cid = f"unknown-{cid()}"
    local = platform.rpc("ven.agent", "handle_command", {"op": kind, "correlationId": local_cid, "venId": THING})
    assert local["status"] == "rejected" and local["reason_code"] == "unknown_op", local
    assert local["correlationId"] == local_cid and "status_snapshot" not in local
