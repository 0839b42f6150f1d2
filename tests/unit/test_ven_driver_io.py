"""The VenAgent's driver conversation (venagent.driver_io) against a fake driver: no platform."""

from __future__ import annotations

from typing import Any

import gevent
from core_support import building_config

from venagent import driver_io


class Answer:
    def __init__(self, value: Any = None, error: BaseException | None = None, delay: float = 0.0) -> None:
        self.value, self.error, self.delay = value, error, delay

    def get(self, timeout: float | None = None) -> Any:
        if self.delay and (timeout is None or self.delay > timeout):
            raise gevent.Timeout(timeout)
        if self.error is not None:
            raise self.error
        return self.value


def fake_driver(answers: dict[tuple[str, bool], Answer]) -> tuple[Any, list[tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def call(method: str, *args: Any, **kwargs: Any) -> Answer:
        calls.append((method, args, kwargs))
        return answers.get((method, bool(args[0]) if args else False), Answer([{}, {}]))

    return call, calls


def test_one_set_per_device_and_value() -> None:
    call, calls = fake_driver({})
    written, failed = driver_io.write_circuits(call, building_config(), {"HVAC": False, "Heater": False, "EV Charger": True})
    assert sorted(written) == ["EV Charger", "HVAC", "Heater"] and failed == {}
    sets = sorted((args[0], sorted(kw["topic"])) for method, args, kw in calls if method == "set")
    assert sets == [(False, ["devices/campus/building/sim/HVAC_enabled", "devices/campus/building/sim/Heater_enabled"]),
                    (True, ["devices/campus/building/sim/EV Charger_enabled"])]


def test_refusals_and_silence_leave_the_outcome_unknown() -> None:
    off_topic = "devices/campus/building/sim/HVAC_enabled"
    call, _ = fake_driver({("set", False): Answer([{}, {off_topic: "device down"}]),
                           ("set", True): Answer(delay=10.0)})
    cfg = building_config(driver_timeout_sec=0.05)
    _written, failed = driver_io.write_circuits(call, cfg, {"HVAC": False, "Heater": True})
    assert failed["HVAC"] == "refused: device down"
    assert failed["Heater"].startswith("no answer from platform.driver within")


def test_read_points_take_value_and_time_from_the_drivers_last_and_fail_as_stale() -> None:
    def call(method: str, *args: Any, **kwargs: Any) -> Answer:
        assert method == "last" and kwargs == {"topic": "devices/campus/building/sim", "value": True, "updated": True}
        return Answer({"devices/campus/building/sim/HVAC_kw": {"value": 5.5, "updated": "2026-01-01T00:00:00+00:00"},
                       "x/never": {"value": None, "updated": None}, "x/bad": {"value": 1, "updated": "not a time"}})

    assert driver_io.read_points(call, "campus/building/sim") == {"HVAC_kw": (5.5, 1767225600.0)}
    assert driver_io.read_points(lambda *a, **k: Answer(error=RuntimeError("driver gone")), "d") == {}


def test_read_back_asks_the_power_points_and_the_meter_and_stamps_the_asking_time() -> None:
    asked: list[Any] = []

    def call(method: str, *args: Any, **kwargs: Any) -> Answer:
        asked.append((method, sorted(kwargs["topic"])))
        return Answer([{"devices/campus/building/sim/Heater_kw": 0.0, "devices/campus/building/sim/Building_kw": 7.5},
                       {}])

    cfg = building_config()
    samples, _meter_kw, meter_ts = driver_io.read_back(call, cfg, {"Heater": False})
    assert asked == [("get", sorted(["devices/campus/building/sim/Heater_kw",
                                     f"devices/{cfg.meter.device}/{cfg.meter.point}"] if cfg.meter else
                                    ["devices/campus/building/sim/Heater_kw"]))]
    assert samples["Heater"].enabled is False and samples["Heater"].kw == 0.0 and samples["Heater"].read_ts
    if cfg.meter is not None:
        assert meter_ts is not None
    assert driver_io.read_back(lambda *a, **k: Answer(error=RuntimeError("x")), cfg, {"Heater": False}) == ({}, None, None)


def test_a_poll_round_of_many_devices_is_one_last_call_split_by_device() -> None:
    asked: list[dict[str, Any]] = []

    def call(method: str, *args: Any, **kwargs: Any) -> Answer:
        asked.append(kwargs)
        stamp = "2026-01-01T00:00:00+00:00"
        return Answer({"devices/campus/building/u01/A_kw": {"value": 1.5, "updated": stamp},
                       "devices/campus/building/u02/B_kw": {"value": 2.5, "updated": stamp},
                       "devices/campus/building/u03/C_kw": {"value": 9.9, "updated": stamp}})   # not asked for

    got = driver_io.read_devices(call, ["campus/building/u01", "campus/building/u02"])
    assert asked == [{"topic": "devices/campus/building", "value": True, "updated": True}]
    assert got == {"campus/building/u01": {"A_kw": (1.5, 1767225600.0)},
                   "campus/building/u02": {"B_kw": (2.5, 1767225600.0)}}
    silent = driver_io.read_devices(lambda *a, **k: Answer(error=RuntimeError("gone")), ["a/x", "a/y"])
    assert silent == {"a/x": {}, "a/y": {}}
    assert driver_io.common_prefix([["a", "b", "c"], ["a", "b"], ["a", "x"]]) == ["a"]
