"""A driver poll round becomes one engine step; the read-back of a switch waits for its metering slot."""

from __future__ import annotations

from core_support import building_config, circuit

from venagent.core.cadence import MeteringCadence
from venagent.core.config import VenConfig
from venagent.core.poll_round import PollRound, Step


def _config(devices: list[str], meter: str | None) -> VenConfig:
    circuits = [dict(circuit(f"c{i}", 1.0, i), device=device) for i, device in enumerate(devices, start=1)]
    return building_config(circuits=circuits, meter=None if meter is None else {"device": meter, "point": "Meter_kw"})


def test_a_one_device_building_steps_at_each_publish() -> None:
    poll = PollRound.for_config(_config(["panel", "panel"], "panel"))
    assert poll.offer("panel", {"E1": True}) is Step.TAKE
    assert poll.take() == {"panel": {"E1": True}} and poll.take() == {}


def test_a_campus_waits_for_every_device_then_takes_the_round_once() -> None:
    poll = PollRound.for_config(_config(["u1", "u2", "u3"], "meter"))
    assert poll.devices == {"u1", "u2", "u3", "meter"}
    assert poll.offer("u1", {"a": 1}) is Step.WAIT       # the shell sets its one deadline
    assert poll.offer("u2", {"b": 2}) is Step.HELD       # no second deadline
    assert poll.offer("elsewhere", {"x": 0}) is Step.IGNORE
    assert poll.offer("u3", {"c": 3}) is Step.HELD
    assert poll.offer("meter", {"m": 9}) is Step.TAKE
    assert set(poll.take()) == {"u1", "u2", "u3", "meter"}
    assert poll.offer("u2", {"b": 3}) is Step.WAIT       # the next round starts afresh


def test_an_incomplete_round_is_taken_at_its_deadline_as_it_is() -> None:
    poll = PollRound.for_config(_config(["u1", "u2"], None))
    assert poll.offer("u1", {"a": 1}) is Step.WAIT
    assert poll.take() == {"u1": {"a": 1}}               # u2 never published: staleness, not a wait
    assert poll.offer("u1", {"a": 2}) is Step.WAIT


def test_the_config_groups_circuits_by_device_in_order() -> None:
    config = _config(["u2", "u1", "u2"], None)
    assert config.circuits_by_device == {"u2": ["c1", "c3"], "u1": ["c2"]}


def test_a_read_back_waits_for_its_metering_slot() -> None:
    cadence = MeteringCadence(1.0)
    assert cadence.wait_sec(100.0) == 0.0                # nothing emitted yet: at once
    assert cadence.arrival(100.0)
    wait = cadence.wait_sec(100.1)
    assert 0.005 < wait <= 1.0
    assert cadence.wait_sec(100.1 + wait) == 0.005       # the slot is open: only the margin
