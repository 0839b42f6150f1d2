"""The VenAgent's conversations with ``platform.driver``: switching circuits, reading back what a
switch did, and asking when each point was last read. All go through one ``call(method, *args,
**kwargs)`` that returns an async result (``vip.rpc.call``), so a test hands in a fake driver.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import gevent

from ven_common.contract import DRIVER_IDENTITY

from venagent.core import CircuitSample, VenConfig

_log = logging.getLogger(__name__)

READ_TIME_TIMEOUT_SEC = 1.0

# call(method, *args, **kwargs) -> an AsyncResult of the driver's answer (vip.rpc.call bound to the driver)
DriverCall = Callable[..., Any]


def read_points(call: DriverCall, device: str) -> dict[str, tuple[Any, float]]:
    """Each point of ``device`` as the driver last read it (see :func:`read_devices`)."""
    return read_devices(call, [device])[device]


def read_devices(call: DriverCall, devices: Sequence[str]) -> dict[str, dict[str, tuple[Any, float]]]:
    """Each point of each of ``devices`` as the driver last read it: (value, when), from its
    ``last()``, a cache lookup of a few ms, asked once for the devices' common topic prefix (a campus
    of 20 devices makes one call a poll round, not 20; platform-driver rc9's ``last`` takes one
    topic, not a list). Taken instead of the ``/all`` publish's values, which are the poll before
    (the publish goes out before that tick's poll lands) and, for a few polls after a device stopped
    answering, cached repeats: value and time come from one place, so they agree. Empty for every
    device when the driver does not answer (then nothing of these publishes counts as fresh)."""
    out: dict[str, dict[str, tuple[Any, float]]] = {device: {} for device in devices}
    if not devices:
        return out
    prefix = "/".join(common_prefix([device.split("/") for device in devices]))
    try:
        answer = call("last", topic=f"devices/{prefix}", value=True, updated=True).get(timeout=READ_TIME_TIMEOUT_SEC)
    except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - then nothing in these publishes counts as fresh
        _log.warning("cannot ask the driver what it last read from %s (%s): its values count as stale",
                     ", ".join(devices), exc or type(exc).__name__)
        return out
    for topic, entry in (answer.items() if isinstance(answer, Mapping) else ()):
        device, _, point = str(topic).removeprefix("devices/").rpartition("/")
        if device not in out or not isinstance(entry, Mapping) or not isinstance(entry.get("updated"), str):
            continue
        try:
            out[device][point] = (entry.get("value"), datetime.fromisoformat(entry["updated"]).timestamp())
        except ValueError:
            continue
    return out


def common_prefix(paths: Sequence[Sequence[str]]) -> list[str]:
    """The longest run of leading segments all ``paths`` share."""
    first, *rest = paths
    n = len(first)
    for other in rest:
        n = next((i for i, (a, b) in enumerate(zip(first[:n], other, strict=False)) if a != b), min(n, len(other)))
    return list(first[:n])


def _number(value: Any) -> float | None:
    """A driver value as kW, or None for anything that is not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def samples_of(config: VenConfig, device: str, names: Iterable[str], read: Mapping[str, tuple[Any, float]],
               published: Mapping[str, Any]) -> tuple[dict[str, CircuitSample], float | None, float | None]:
    """The circuits (and the meter) of ``device`` from what the driver last read (:func:`read_points`); a
    point missing there falls back to the publish's value, stamped 0 (stale: it drives nothing)."""
    def point(name: str) -> tuple[Any, float]:
        return read[name] if name in read else (published.get(name), 0.0)

    samples: dict[str, CircuitSample] = {}
    for name in names:
        circuit = config.circuit(name)
        if circuit is None:
            continue
        (enabled, on_ts), (power, kw_ts) = point(circuit.enable_point), point(circuit.power_point)
        samples[name] = CircuitSample(enabled=bool(enabled) if isinstance(enabled, (bool, int, float)) else None,
                                      kw=_number(power), read_ts=min(on_ts, kw_ts))
    meter_kw = meter_ts = None
    if config.meter is not None and config.meter.device == device:
        meter_value, meter_ts = point(config.meter.point)
        meter_kw = _number(meter_value)
    return samples, meter_kw, meter_ts


def write_circuits(call: DriverCall, config: VenConfig, writes: Mapping[str, bool]) -> tuple[list[str], dict[str, str]]:
    """One driver ``set`` per device and value (usually one per device), devices in parallel,
    each bounded by ``driver_timeout_sec``. Returns the circuits written and, for those the
    driver refused or did not confirm in time, the error: their outcome is unknown.

    Not ``set_multiple_points``: platform-driver 2.0.0rc9 sends its points to every device's
    interface ("all topics are sent to all remotes"), so with two devices one of them reports
    errors for the other's points. ``set`` routes each point to its own device."""
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    by_topic: dict[str, str] = {}
    for name, enabled in writes.items():
        circuit = config.circuit(name)
        if circuit is not None:
            topic = f"devices/{circuit.device}/{circuit.enable_point}"
            groups[(circuit.device, bool(enabled))].append(topic)
            by_topic[topic] = name
    calls = {key: call("set", key[1], topic=topics) for key, topics in groups.items()}
    deadline = time.monotonic() + config.driver_timeout_sec
    failed: dict[str, str] = {}
    for key, result in calls.items():
        topics = groups[key]
        try:
            answer = result.get(timeout=max(0.0, deadline - time.monotonic()))
        except gevent.Timeout:
            error = f"no answer from {DRIVER_IDENTITY} within {config.driver_timeout_sec:g} s"
            failed.update({by_topic[t]: error for t in topics})
            continue
        except Exception as exc:  # noqa: BLE001 - any driver error leaves the outcome unknown
            error = f"{type(exc).__name__}: {exc}"[:200]
            failed.update({by_topic[t]: error for t in topics})
            continue
        # (results, errors); the Modbus interface reports a device that is down as errors per topic.
        errors = answer[1] if isinstance(answer, (list, tuple)) and len(answer) == 2 else {}
        for topic, error in (errors.items() if isinstance(errors, Mapping) else ()):
            named = by_topic.get(str(topic))
            for hit in ([named] if named is not None else [by_topic[t] for t in topics]):
                failed[hit] = f"refused: {error}"[:200]
    if failed:
        _log.error("driver writes not confirmed: %s", failed)
    return list(by_topic.values()), failed


def read_back(call: DriverCall, config: VenConfig, switched: Mapping[str, bool]
              ) -> tuple[dict[str, CircuitSample], float | None, float | None]:
    """Read the power of the circuits just switched (and the meter) from the devices, right after
    the driver confirmed the switch: the driver's next ``/all`` publish carries its previous poll,
    so without this a shed shows on ``volttron/metering`` 1-2 s late. One driver ``get`` of the
    power points only (one Modbus request: the input registers); the relays' state is the one the
    driver just confirmed. Stamped with the time the read was asked for (the device answered
    after it). Returns (samples, meter kW, meter read time); empty when the driver did not answer.
    """
    topics: dict[str, tuple[str, str]] = {}   # topic -> (circuit name | "", point)
    for name in switched:
        circuit = config.circuit(name)
        if circuit is not None:
            topics[f"devices/{circuit.device}/{circuit.power_point}"] = (name, circuit.power_point)
    if config.meter is not None:
        topics[f"devices/{config.meter.device}/{config.meter.point}"] = ("", config.meter.point)
    if not topics:
        return {}, None, None
    asked = time.time()
    try:
        answer = call("get", topic=list(topics)).get(timeout=config.driver_timeout_sec)
    except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - the next driver publish tells instead
        _log.info("read-back after a switch failed (%s): the next driver publish shows it", exc or type(exc).__name__)
        return {}, None, None
    values = answer[0] if isinstance(answer, (list, tuple)) and answer and isinstance(answer[0], Mapping) else {}
    samples: dict[str, CircuitSample] = {}
    meter_kw = None
    for topic, value in values.items():
        key = str(topic) if str(topic).startswith("devices/") else f"devices/{topic}"
        hit = topics.get(key)
        kw = _number(value)
        if hit is None or kw is None:
            continue
        name, _ = hit
        if name:
            samples[name] = CircuitSample(enabled=bool(switched[name]), kw=kw, read_ts=asked)
        else:
            meter_kw = kw
    return samples, meter_kw, (asked if meter_kw is not None else None)
