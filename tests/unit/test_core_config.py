"""VenConfig: defaults, strict types, every problem reported at once."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from core_support import building_config, circuit

from venagent.core import ConfigError, VenConfig


def test_defaults_match_the_documented_values() -> None:
    cfg = VenConfig.from_dict({"circuits": [circuit("A", 1.0, 1)]})
    assert (cfg.thing_name, cfg.metering_interval_sec, cfg.baseline_samples) == ("volttron_thing", 1.0, 60)
    assert (cfg.mv_baseline_window_sec, cfg.max_event_duration_sec, cfg.max_shed_kw) == (300, 86400, 1000.0)
    assert (cfg.max_schedule_ahead_sec, cfg.restore_spacing_sec, cfg.restore_jitter_sec) == (604800, 2.0, 1.0)
    assert (cfg.hold_confirm_sec, cfg.ack_cache_size, cfg.meter, dict(cfg.overrides)) == (5.0, 10000, None, {})
    assert cfg.circuits[0].critical is False and cfg.circuits[0].min_on_sec == 0


def test_full_example_parses_and_is_frozen() -> None:
    cfg = building_config(meter={"device": "campus/building/sim", "point": "Building_kw"}, overrides={"Lighting": True})
    assert cfg.meter is not None and cfg.meter.point == "Building_kw"
    assert cfg.circuits_by_name["Lighting"].critical
    with pytest.raises(pydantic.ValidationError):
        cfg.thing_name = "other"  # type: ignore[misc]


def _problems(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        VenConfig.from_dict(data)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        {
            "circuits": [circuit("A", True, -1), circuit("A", float("nan"), 1.5)],
            "overrides": {"Nope": True},
            "bogus": 1,
            "metering_interval_sec": 0,
        }
    )
    joined = "\n".join(problems)
    for expected in (
        "metering_interval_sec",
        "circuits.0.rated_kw",
        "circuits.0.priority",
        "circuits.1.rated_kw",
        "circuits.1.priority",
        "bogus",
        "names must be unique, duplicated: A",
        "overrides: unknown circuit(s): Nope",
    ):
        assert expected in joined, expected
    assert len(problems) == 8


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "circuits"),
        ({"circuits": []}, "circuits"),
        ({"circuits": [circuit("A", 0, 1)]}, "rated_kw"),
        ({"circuits": [circuit("A", 1, 1, min_off_sec=-1)]}, "min_off_sec"),
        ({"circuits": [circuit("A", 1, 1, min_on_sec=-0.5)]}, "min_on_sec"),
        ({"circuits": [circuit("A", 1, 1, critical="yes")]}, "critical"),
        ({"circuits": [circuit("A", 1, True)]}, "priority"),
        ({"circuits": [circuit("A", 1, 1)], "baseline_samples": 0}, "baseline_samples"),
        ({"circuits": [circuit("A", 1, 1)], "max_shed_kw": float("inf")}, "max_shed_kw"),
        ({"circuits": [circuit("A", 1, 1)], "meter": {"device": "d"}}, "meter.point"),
        ({"circuits": [circuit("A", 1, 1)], "overrides": {"A": "on"}}, "overrides.A"),
        ({"circuits": [circuit("A", 1, 1, colour="red")]}, "colour"),
    ],
)
def test_single_problems_name_the_field(data: dict[str, Any], fragment: str) -> None:
    assert any(fragment in p for p in _problems(data))


def test_non_object_config_is_a_config_error() -> None:
    assert _problems([]) == ("config must be a JSON object, got list",)  # type: ignore[arg-type]


def test_desired_shadow_settings_apply_only_to_known_circuits_and_valid_values() -> None:
    from core_support import building_config

    from venagent.core.config import apply_desired_settings

    cfg = building_config()
    data, accepted = apply_desired_settings(cfg, {"metering_interval_sec": 2, "circuit_priorities": {"HVAC": 0,
                                                                                                   "Sauna": 1}})
    assert accepted == {"metering_interval_sec": 2, "circuit_priorities": {"HVAC": 0}}
    assert data["metering_interval_sec"] == 2
    assert next(c for c in data["circuits"] if c["name"] == "HVAC")["priority"] == 0
    assert apply_desired_settings(cfg, {"unknown": 1})[1] == {}
    with pytest.raises(ValueError):
        apply_desired_settings(cfg, {"metering_interval_sec": -5})


def test_a_refused_shadow_setting_carries_the_vens_reason() -> None:
    from core_support import building_config

    from venagent.core.config import desired_outcome

    cfg = building_config()
    data, accepted, refused = desired_outcome(cfg, {"circuit_priorities": {"HVAC": 0, "Sauna": 1}, "colour": "red"})
    assert data is not None and accepted == {"circuit_priorities": {"HVAC": 0}}
    assert refused == {"circuit_priorities": "unknown circuit(s): Sauna (the others were applied)",
                       "colour": "not a setting the VEN takes from the shadow"}
    data, accepted, refused = desired_outcome(cfg, {"metering_interval_sec": -5})
    assert data is None and accepted == {}
    assert "metering_interval_sec" in refused["metering_interval_sec"]
