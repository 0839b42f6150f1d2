"""The typed payload shapes of the contract name the wire's fields and do not change its JSON."""

from __future__ import annotations

import json

from core_support import T0, Building, building_config, drive, event_cmd, make_engine

from ven_common.contract import (
    Ack,
    BusTopics,
    Reading,
    RejectReason,
    ack_from_dict,
    reading_from_dict,
    reject_ack,
    seed_reading_problem,
)

SEED_ACK = {"op", "status", "event_id", "requested_shed_kw", "actual_shed_kw", "ts", "correlationId"}
SEED_READING = {"venId", "ts", "power_kw", "baseline_kw", "shed_kw", "active_event", "circuits"}


def test_reject_ack_is_the_seed_shape_plus_reason() -> None:
    ack = reject_ack(op="event", correlation_id="c", reason_code=RejectReason.WRONG_TYPE, reason="r", ts=1,
                     ven_id="v")
    assert set(ack) == SEED_ACK | {"venId", "reason", "reason_code"}
    assert json.loads(json.dumps(ack)) == ack and type(ack) is dict
    assert ack_from_dict(json.loads(json.dumps(ack))) == ack


def test_every_ack_and_reading_field_is_named_in_the_typed_shapes() -> None:
    cfg = building_config()
    engine = make_engine(cfg)
    building = Building(cfg)
    drive(engine, building, T0, T0 + 30)
    ack, fx = engine.on_command(T0 + 31, event_cmd("evt-shape", 2.0, 300))
    building.apply(fx.writes)
    assert set(ack) <= set(Ack.__annotations__) and set(ack) >= SEED_ACK
    readings = engine.on_readings(T0 + 33, building.samples()).of_topic(BusTopics.METERING)
    assert readings and set(readings[-1]) <= set(Reading.__annotations__) and set(readings[-1]) >= SEED_READING
    assert reading_from_dict(readings[-1]) is readings[-1] and seed_reading_problem(readings[-1]) is None


def test_from_dict_refuses_what_is_not_the_shape() -> None:
    assert ack_from_dict({"status": "accepted"}) is None
    assert ack_from_dict([1]) is None
    almost = dict.fromkeys(SEED_ACK | {"venId"}, None) | {"status": "maybe", "venId": "v"}
    assert ack_from_dict(almost) is None
    assert reading_from_dict({"venId": "v", "readings": []}) is None


def test_the_thing_name_has_one_rule_for_both_agents() -> None:
    """IOT_THING_NAME when set, else the configured name, else the default: the VEN and the bridge agree."""
    from ven_common.contract import DEFAULT_THING_NAME, resolve_thing_name

    from backendbridge.config import load_config
    cases = [({"thing_name": "cfg"}, {"IOT_THING_NAME": "env"}, "env"),
             ({"thing_name": "cfg"}, {}, "cfg"),
             ({}, {"IOT_THING_NAME": "env"}, "env"),
             ({}, {}, DEFAULT_THING_NAME)]
    for config, env, expected in cases:
        assert resolve_thing_name(config.get("thing_name"), env) == expected
        assert load_config(config, env=env).thing_name == expected


def test_every_topic_string_comes_from_the_contract() -> None:
    """No module but the contract spells a cross-process MQTT topic (docstrings aside): the bridge, the tools,
    the backend and shadow stand-ins and the broker's ACL all build theirs from MqttTopics."""
    import ast
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    needles = ("volttron/metering", "ven/cmd", "ven/ack", "ven/telemetry", "$aws/things")
    offenders = []
    for path in repo.rglob("*.py"):
        rel = path.relative_to(repo)
        if rel.parts[0] in ("tests", "bench") or any(p.startswith(".") for p in rel.parts) \
                or rel.as_posix() == "common/ven_common/contract.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and any(n in node.value for n in needles):
                offenders.append(f"{rel}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == []
    assert not any(key == "topics" for key in json.loads((repo / "config/bridge.json").read_text()))
