"""Last-known state of every configured circuit, merged from partial driver publishes.

The driver publishes per device, so one reading carries only some circuits; we merge with what
we knew. We also remember *when* each circuit last went on and off, because min_on/min_off are
about time since the last switch, whoever switched it, and *when* it was last read: a value
older than ``stale_after_sec`` is stale (a stopped driver, a silent device, a publish with
missing keys), is shown as such, and never drives a decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from venagent.core.config import CircuitConfig


@dataclass(frozen=True)
class CircuitSample:
    """What a driver publish told us about one circuit (None = not in this publish or unreadable)."""

    enabled: bool | None
    kw: float | None
    read_ts: float | None = None
    """When the driver last read these values from the device (its ``last()``: a driver republishes
    cached values for a while after a device stops answering); None = when they arrived."""


SWITCH_LANDING_SEC = 1.0
"""How long after the driver confirmed a switch a poll read before it may still land: one poll's
scrape through the protocol proxy (~0.2-0.4 s on the Modbus panel), with room."""


@dataclass
class CircuitState:
    enabled: bool | None = None
    kw: float | None = None
    # None means "not seen switching": treated as long ago, so min_on/min_off are satisfied.
    on_since: float | None = None
    off_since: float | None = None
    # A switch we commanded and have not yet seen in a reading: when it shows up, the timer
    # already started at the write and must not restart at the (later) reading.
    pending: bool | None = None
    # When the pending switch was sent, and whether the driver refused it (or did not answer):
    # a refused switch-off is not counted as shed, and the switch is sent again once fresh
    # readings show the circuit in the other state.
    write_ts: float | None = None
    write_failed: bool = False
    # When the driver confirmed the pending switch: a poll that read the device before the switch
    # lands (and is stamped by the driver) after it; within SWITCH_LANDING_SEC such a reading of
    # the old state is older news, not the device switching back.
    confirmed_ts: float | None = None
    confirmed_enabled: bool | None = None
    # The last time a reading carried both the circuit's switch state and its power.
    seen_ts: float | None = None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if math.isfinite(as_float) else None


@dataclass
class CircuitTracker:
    """Mutable live state, keyed by circuit name, restricted to the configured circuits."""

    configs: dict[str, CircuitConfig]
    states: dict[str, CircuitState] = field(default_factory=dict)
    meter_kw: float | None = None
    meter_ts: float | None = None
    has_meter: bool = False
    stale_after_sec: float = 5.0
    _by_device: tuple[dict[str, CircuitConfig], dict[str, list[str]]] | None = field(default=None, repr=False)

    @classmethod
    def for_config(cls, circuits: Iterable[CircuitConfig], has_meter: bool,
                   stale_after_sec: float = 5.0) -> CircuitTracker:
        configs = {c.name: c for c in circuits}
        return cls(configs=configs, states={n: CircuitState() for n in configs}, has_meter=has_meter,
                   stale_after_sec=stale_after_sec)

    def reconfigure(self, circuits: Iterable[CircuitConfig], has_meter: bool) -> None:
        """Keep what we know about circuits that survive; forget removed ones."""
        self.configs = {c.name: c for c in circuits}
        self.states = {n: self.states.get(n, CircuitState()) for n in self.configs}
        self.has_meter = has_meter
        if not has_meter:
            self.meter_kw = self.meter_ts = None

    def merge(self, now: float, samples: Mapping[str, CircuitSample], meter_kw: float | None,
              meter_read_ts: float | None = None, after_switch: bool = False) -> None:
        """``after_switch``: the VEN's own read-back, asked for after the driver confirmed its switches
        (its stamp is when it was asked: the device was read after that). A driver poll is stamped
        when it lands, so within SWITCH_LANDING_SEC of a confirmed switch its meter value may be
        from before the switch (a circuit's relay state tells; the meter's value cannot)."""
        for name, sample in samples.items():
            state = self.states.get(name)
            if state is None or not isinstance(sample, CircuitSample):
                continue
            if sample.read_ts is not None and state.seen_ts is not None and sample.read_ts < state.seen_ts:
                # Read before what we already know (a driver publish of its previous poll arriving
                # after the VEN's own read-back of a write): older news, not a change.
                continue
            if (state.confirmed_ts is not None and sample.enabled is not None
                    and sample.enabled != state.confirmed_enabled and sample.read_ts is not None
                    and sample.read_ts < state.confirmed_ts + SWITCH_LANDING_SEC):
                continue   # a poll of the device from before the switch it confirmed (see CircuitState)
            if isinstance(sample.enabled, bool):
                self._observe_switch(now, state, sample.enabled)
            kw = _finite(sample.kw)
            if kw is not None:
                state.kw = kw
            if isinstance(sample.enabled, bool) and kw is not None:
                read = now if sample.read_ts is None else min(now, sample.read_ts)
                state.seen_ts = read if state.seen_ts is None else max(state.seen_ts, read)
        meter = _finite(meter_kw)
        if (meter_read_ts is not None and self.meter_ts is not None and meter_read_ts < self.meter_ts):
            meter = None   # older than the meter reading we hold (see above)
        switched = max((st.confirmed_ts for st in self.states.values() if st.confirmed_ts is not None), default=None)
        if (not after_switch and meter_read_ts is not None and switched is not None
                and meter_read_ts < switched + SWITCH_LANDING_SEC):
            meter = None   # maybe a poll from before the switch (see above)
        if self.has_meter and meter is not None:
            self.meter_kw = meter
            read = now if meter_read_ts is None else min(now, meter_read_ts)
            self.meter_ts = read if self.meter_ts is None else max(self.meter_ts, read)

    def _observe_switch(self, now: float, state: CircuitState, enabled: bool) -> None:
        # Only a change we *see* starts a timer; the first reading says nothing about when it switched.
        if state.enabled is not None and state.enabled != enabled and state.pending != enabled:
            if enabled:
                state.on_since = now
            else:
                state.off_since = now
        if state.pending == enabled:
            state.pending = None
            state.write_failed = False
        state.enabled = enabled

    def note_write(self, now: float, name: str, enabled: bool) -> None:
        """We commanded a switch: start its min_on/min_off timer now (the reading will follow)."""
        state = self.states.get(name)
        if state is None:
            return
        state.pending = enabled
        state.write_ts = now
        if enabled:
            state.on_since = now
        else:
            state.off_since = now

    def note_write_outcome(self, now: float, name: str, confirmed: bool) -> None:
        """The driver confirmed the circuit's last write, or refused it / did not answer (then its
        outcome is unknown until a reading shows the commanded state or a later write is confirmed)."""
        state = self.states.get(name)
        if state is not None:
            state.write_failed = not confirmed and state.pending is not None
            if confirmed and state.pending is not None:
                state.confirmed_ts, state.confirmed_enabled = now, state.pending

    # freshness
    def circuit_fresh(self, now: float, name: str) -> bool:
        seen = self.states[name].seen_ts
        return seen is not None and now - seen <= self.stale_after_sec

    def meter_fresh(self, now: float) -> bool:
        return not self.has_meter or (self.meter_ts is not None and now - self.meter_ts <= self.stale_after_sec)

    def stale_circuits(self, now: float) -> list[str]:
        # Inline, not circuit_fresh() per name: called a few times per driver publish, over every circuit.
        limit = self.stale_after_sec
        return [name for name, s in self.states.items() if s.seen_ts is None or now - s.seen_ts > limit]

    def by_device(self) -> dict[str, list[str]]:
        """Circuit names per driver device, in config order (recomputed only after a reconfigure)."""
        if self._by_device is None or self._by_device[0] is not self.configs:
            grouped: dict[str, list[str]] = {}
            for name, cfg in self.configs.items():
                grouped.setdefault(cfg.device, []).append(name)
            self._by_device = (self.configs, grouped)
        return self._by_device[1]

    def fresh(self, now: float) -> bool:
        """Every circuit (and the meter) read within ``stale_after_sec``: decisions may use the data."""
        return self.meter_fresh(now) and not self.stale_circuits(now)

    def read_since(self) -> float | None:
        """When the oldest of the values the total is made of was read (None: something never was).
        A reading can only show the effect of a switch made before this time."""
        times = [s.seen_ts for s in self.states.values()]
        if self.has_meter:
            times.append(self.meter_ts)
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    def fresh_total_kw(self, now: float) -> float | None:
        """The building's power, or None while any of it is stale (or was never read)."""
        return self.total_kw() if self.fresh(now) else None

    def settling(self, now: float, within_sec: float = 10.0) -> bool:
        """A switch we commanded has not shown in a reading yet (bounded, in case it never will)."""
        for state in self.states.values():
            if state.pending is None:
                continue
            since = state.on_since if state.pending else state.off_since
            if since is not None and now - since < within_sec:
                return True
        return False

    def total_kw(self) -> float | None:
        """Meter when configured and known, else the sum of known circuit kW (None if nothing known)."""
        if self.has_meter and self.meter_kw is not None:
            return self.meter_kw
        known = [s.kw for s in self.states.values() if s.kw is not None]
        return math.fsum(known) if known else None

    def kw_estimate(self, name: str) -> float:
        """Current kW, falling back to rated kW for an enabled circuit whose power is unknown."""
        state = self.states[name]
        if state.kw is not None:
            return state.kw
        return self.configs[name].rated_kw if state.enabled else 0.0

    def min_on_met(self, now: float, name: str) -> bool:
        since = self.states[name].on_since
        return since is None or now - since >= self.configs[name].min_on_sec

    def min_off_met(self, now: float, name: str) -> bool:
        since = self.states[name].off_since
        return since is None or now - since >= self.configs[name].min_off_sec

    def off_ready_at(self, name: str) -> float | None:
        """Earliest time the circuit may be switched back on (None = any time)."""
        since = self.states[name].off_since
        return None if since is None else since + self.configs[name].min_off_sec

    def snapshot_enabled(self) -> dict[str, bool | None]:
        return {n: s.enabled for n, s in self.states.items()}
