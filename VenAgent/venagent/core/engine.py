"""The façade the VOLTTRON shell drives: readings, commands, ticks, overrides, restarts.

Every public method takes ``now`` (epoch seconds) and returns :class:`Effects` (writes + bus
messages) instead of doing I/O, so the whole demand-response behaviour is testable with a fake
clock.

Idempotency lives here: a repeated ``correlationId`` returns the identical stored ack (accepted
or rejected) and changes nothing; acks are persisted, bounded by ``ack_cache_size``. Command
semantics are in :mod:`venagent.core.handlers`. A rejection never changes state and never writes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from ven_common.contract import BusTopics, Op, read_correlation_id, reject_ack

from venagent.core.baseline import MeterBeforeBaseline, RollingMeanBaseline
from venagent.core.cadence import MeteringCadence
from venagent.core.circuits import CircuitSample, CircuitTracker
from venagent.core.commands import (
    CancelCommand,
    EventCommand,
    Rejection,
    RestoreCommand,
    decode_command,
    validate_command,
)
from venagent.core.config import VenConfig
from venagent.core.control import EventController
from venagent.core.effects import Effects, EffectsBuilder
from venagent.core.errors import UnknownCircuitError
from venagent.core.handlers import CommandConflict, CommandHandlers
from venagent.core.lifecycle import Trigger
from venagent.core.store import VenStore
from venagent.core.views import accepted_ack, metering_view, status_view

HISTORY_LIMIT = 100


class VenEngine:
    def __init__(self, config: VenConfig, store: VenStore, rng: random.Random) -> None:
        self._config = config
        self._store = store
        self._circuits = CircuitTracker.for_config(config.circuits, config.meter is not None)
        self._rolling = RollingMeanBaseline(config.baseline_samples)
        self._mv_baseline = MeterBeforeBaseline(config.mv_baseline_window_sec)
        self._overrides = self._initial_overrides(config, store)
        self._ctl = EventController(
            config=config, store=store, rng=rng, circuits=self._circuits, overrides=self._overrides, mv_baseline=self._mv_baseline
        )
        self._handlers = CommandHandlers(self._ctl, store)
        self._cadence = MeteringCadence(config.metering_interval_sec)
        self._status_key: str | None = None

    @staticmethod
    def _initial_overrides(config: VenConfig, store: VenStore) -> dict[str, bool]:
        """Config overrides, then runtime changes on top (a persisted NULL = cleared at runtime)."""
        overrides = dict(config.overrides)
        for name, state in store.load_overrides().items():
            if name not in config.circuits_by_name:
                continue
            if state is None:
                overrides.pop(name, None)
            else:
                overrides[name] = state
        return overrides

    @property
    def config(self) -> VenConfig:
        return self._config

    # readings and time
    def on_readings(self, now: float, samples: Mapping[str, CircuitSample], meter_kw: float | None = None) -> Effects:
        fx = EffectsBuilder()
        self._circuits.merge(now, samples, meter_kw)
        total = self._circuits.total_kw()
        if (total is not None and self._ctl.active() is None and not self._ctl.restores
                and not self._circuits.settling(now)):
            # Baselines describe the building without DR: readings taken while shed, while the
            # restore steps back up, or before the last restore shows in readings would drag them
            # down (back-to-back events).
            self._rolling.add(now, total)
            self._mv_baseline.add(now, total)
        # Enforce before the hold loop: a circuit that came back on explains the extra load, so
        # switching it off again beats shedding a further one.
        active = self._ctl.active()
        if active is not None:
            self._ctl.enforce(now, active, fx)
        self._ctl.advance(now, fx)
        active = self._ctl.active()
        if active is not None and active.mv is not None and total is not None:
            active.mv.add_sample(now, total)
        self._maybe_metering(now, fx)
        return self._finish(now, fx)

    def tick(self, now: float) -> Effects:
        fx = EffectsBuilder()
        self._ctl.advance(now, fx)
        return self._finish(now, fx)

    def _finish(self, now: float, fx: EffectsBuilder) -> Effects:
        self._ctl.persist_if_stale(now)
        self._maybe_status(now, fx)
        return fx.build()

    def _current_shed_kw(self) -> float:
        active = self._ctl.active()
        total = self._circuits.total_kw()
        if active is None or active.mv is None or total is None:
            return 0.0
        return active.mv.baseline_kw - total

    def _maybe_metering(self, now: float, fx: EffectsBuilder) -> None:
        total = self._circuits.total_kw()
        if total is None:
            return
        if not self._cadence.arrival(now):
            return
        active = self._ctl.active()
        fx.publish(
            BusTopics.METERING,
            metering_view(
                ven_id=self._config.thing_name,
                now=now,
                tracker=self._circuits,
                total_kw=total,
                baseline_kw=self._rolling.value(now),
                shed_kw=self._current_shed_kw(),
                active_event_id=None if active is None else active.event_id,
            ),
        )

    def _maybe_status(self, now: float, fx: EffectsBuilder) -> None:
        """Publish status when something a listener acts on changed (not on every kW wiggle)."""
        active = self._ctl.active()
        key = json.dumps(
            [
                None if active is None else [active.event_id, active.state.value, active.requested_shed_kw, active.end_ts, active.shed_order],
                [[e.event_id, e.requested_shed_kw, e.start_ts, e.end_ts] for e in self._ctl.scheduled()],
                sorted(self._overrides.items()),
            ]
        )
        if key != self._status_key:
            self._status_key = key
            fx.publish(BusTopics.STATUS, self.status(now))

    # commands
    def on_command(self, now: float, raw: bytes | str | Mapping[str, Any]) -> tuple[dict[str, Any], Effects]:
        fx = EffectsBuilder()
        decoded = decode_command(raw)
        if isinstance(decoded, Rejection):
            ack = self._reject_ack(now, decoded)
            fx.publish(BusTopics.ACK, ack)
            return ack, fx.build()
        correlation_id = read_correlation_id(decoded)
        if correlation_id is not None:
            stored = self._store.get_ack(correlation_id)
            if stored is not None:
                fx.publish(BusTopics.ACK, stored)
                return stored, fx.build()
        command = validate_command(decoded, self._config, now)
        accepted = False
        if isinstance(command, Rejection):
            ack = self._reject_ack(now, command)
        else:
            try:
                ack = self._dispatch(now, command, fx)
                accepted = True
            except CommandConflict as conflict:
                event_id = getattr(command, "event_id", None)
                rejection = Rejection(decoded.get("op"), command.correlation_id, event_id, conflict.code, conflict.reason)
                ack = self._reject_ack(now, rejection)
        if correlation_id is not None:
            self._store.put_ack(correlation_id, ack, self._config.ack_cache_size)
        fx.publish(BusTopics.ACK, ack)
        # A rejection touched nothing, so there is no status change or persistence to do.
        return ack, self._finish(now, fx) if accepted else fx.build()

    def _reject_ack(self, now: float, rejection: Rejection) -> dict[str, Any]:
        return reject_ack(
            op=rejection.op,
            correlation_id=rejection.correlation_id,
            reason_code=rejection.code,
            reason=rejection.reason,
            ts=int(now),
            ven_id=self._config.thing_name,
            event_id=rejection.event_id,
        )

    def _dispatch(self, now: float, command: Any, fx: EffectsBuilder) -> dict[str, Any]:
        if isinstance(command, EventCommand):
            return self._handlers.on_event(now, command, fx)
        if isinstance(command, CancelCommand):
            return self._handlers.on_cancel(now, command, fx)
        if isinstance(command, RestoreCommand):
            return self._handlers.on_restore(now, command, fx)
        ack = accepted_ack(
            op=Op.STATUS.value, now=now, correlation_id=command.correlation_id, ven_id=self._config.thing_name,
            event=None, state=None, actual_shed_kw=None,
        )
        ack["status_snapshot"] = self.status(now)
        return ack

    # overrides, reconfiguration, restart
    def set_override(self, now: float, circuit: str, state: bool | None) -> Effects:
        if circuit not in self._circuits.configs:
            raise UnknownCircuitError(f"unknown circuit {circuit!r}; known: {', '.join(self._circuits.configs)}")
        fx = EffectsBuilder()
        self._apply_override(now, circuit, state, fx)
        self._store.set_override(circuit, state)
        return self._finish(now, fx)

    def _apply_override(self, now: float, circuit: str, state: bool | None, fx: EffectsBuilder) -> None:
        if state is None:
            self._overrides.pop(circuit, None)
            return
        self._overrides[circuit] = state
        self._ctl.drop_restores([circuit])
        active = self._ctl.active()
        event_id = None
        if active is not None and circuit in active.shed_order:
            # Leave the shed set without a write of our own; the closed loop compensates later.
            self._ctl.release(now, active, circuit, "override", fx, write=False)
            active.last_change_ts = now
            self._ctl.persist(now, active)
            event_id = active.event_id
        self._circuits.note_write(now, circuit, state)
        fx.write(now, {circuit: state}, "override", event_id)

    def reconfigure(self, now: float, config: VenConfig) -> Effects:
        fx = EffectsBuilder()
        removed = [n for n in self._circuits.configs if n not in config.circuits_by_name]
        # Circuits leaving our control go back on first, while the shell can still resolve them.
        active = self._ctl.active()
        if active is not None:
            for name in [n for n in active.shed_order if n in removed]:
                restore_on = active.pre_state.get(name) is not False
                self._ctl.release(now, active, name, "restore", fx, write=restore_on)
            self._ctl.persist(now, active)
        leftover = {s.name: True for s in self._ctl.drop_restores(removed) if s.name not in self._overrides}
        fx.write(now, leftover, "restore", None)
        for name in removed:
            self._overrides.pop(name, None)
        old_config_overrides = dict(self._config.overrides)
        self._config = config
        self._cadence.interval_sec = config.metering_interval_sec
        self._ctl.config = config
        self._circuits.reconfigure(config.circuits, config.meter is not None)
        self._rolling = self._rolling.resized(config.baseline_samples)
        self._mv_baseline.window_sec = config.mv_baseline_window_sec
        for name, pinned in config.overrides.items():
            if old_config_overrides.get(name) != pinned and self._overrides.get(name) != pinned:
                self._apply_override(now, name, pinned, fx)
                self._store.set_override(name, pinned)
        return self._finish(now, fx)

    def resume(self, now: float) -> Effects:
        """Call once after construction: re-assert overrides and the active shed set, catch up on time."""
        fx = EffectsBuilder()
        fx.write(now, dict(self._overrides), "override", None)
        active = self._ctl.active()
        if active is not None:
            if now >= active.end_ts:
                if active.mv is not None:
                    active.mv.gap()
                self._ctl.end(now, active, Trigger.END, "schedule", fx, end_ts=active.end_ts, restore_from=now)
            else:
                self._ctl.reapply(now, active, fx)
                self._ctl.persist(now, active)
        self._ctl.advance(now, fx)
        return self._finish(now, fx)

    # views
    def status(self, now: float) -> dict[str, Any]:
        return status_view(
            tracker=self._circuits,
            overrides=self._overrides,
            total_kw=self._circuits.total_kw(),
            shed_kw=self._current_shed_kw(),
            baseline_kw=self._rolling.value(now),
            active=self._ctl.active(),
            scheduled=self._ctl.scheduled(),
        )

    def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest events, newest first: window, state, how they ended and the M&V report."""
        keys = ("event_id", "state", "requested_shed_kw", "duration_sec", "start_ts", "end_ts", "ended_by",
                "ended_ts", "shed_order", "report")
        return [{k: doc.get(k) for k in keys} for doc in self._store.load_recent_events(limit)]

    def events(self) -> list[dict[str, Any]]:
        """Event state transitions, newest first (at most 100)."""
        return self._store.load_history(HISTORY_LIMIT)
