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


def test_read_times_parse_the_drivers_last_and_fail_as_stale() -> None:
    def call(method: str, *args: Any, **kwargs: Any) -> Answer:
        assert method == "last" and kwargs["topic"] == "devices/campus/building/sim"
        return Answer({"devices/campus/building/sim/HVAC_kw": "2026-01-01T00:00:00+00:00", "x/bad": "not a time"})

    assert driver_io.read_times(call, "campus/building/sim") == {"HVAC_kw": 1767225600.0}
    assert driver_io.read_times(lambda *a, **k: Answer(error=RuntimeError("driver gone")), "d") == {}
