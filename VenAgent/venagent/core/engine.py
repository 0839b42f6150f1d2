"""The façade the VOLTTRON shell drives: readings, commands, ticks, overrides, restarts.

Every public method takes ``now`` (epoch seconds) and returns :class:`Effects` (writes + bus
messages) instead of doing I/O, so the whole demand-response behaviour is testable with a fake
clock.

Idempotency lives here, and only here (the check in :mod:`venagent.core.intake`, the storing in
:meth:`VenEngine.complete_command`): a command re-sent with its ``correlationId`` (a backend
retry or a broker redelivery) returns the identical stored ack and changes nothing; the same
``correlationId`` on a *different* command is rejected (``correlation_reused``) and changes
nothing. Acks are persisted with the command's fingerprint, bounded by ``ack_cache_size``.
Command semantics are in :mod:`venagent.core.handlers`. A rejection never changes state and
never writes.

A command is handled in two steps because its ack must say what the driver confirmed:
:meth:`VenEngine.begin_command` decides and returns the writes, the shell performs them, and
:meth:`VenEngine.complete_command` takes the driver's answer and settles the ack (a switch-off
the driver did not confirm does not count in ``actual_shed_kw``; the note names the device).

Stale data never drives a decision: the hold loop, enforcement, baselines and the start of a
shed all wait for fresh readings (:mod:`venagent.core.circuits`); metering keeps its cadence and
says plainly when no fresh reading exists (``quality: "stale"``, values null).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, assert_never

from ven_common.contract import Ack, BusTopics, Op

from venagent.core.baseline import MeterBeforeBaseline, RollingMeanBaseline
from venagent.core.cadence import MeteringCadence
from venagent.core.circuits import CircuitSample, CircuitState, CircuitTracker
from venagent.core.commands import CancelCommand, Command, EventCommand, Rejection, RestoreCommand, StatusCommand
from venagent.core.config import VenConfig, effective_overrides
from venagent.core.control import EventController
from venagent.core.effects import Effects, EffectsBuilder, PendingCommand
from venagent.core.errors import CommandRejected, UnknownCircuitError
from venagent.core.handlers import CommandHandlers
from venagent.core.health import DeviceFault, DeviceHealth
from venagent.core.intake import Admitted, Refused, Replay, rejection_ack, take_in
from venagent.core.lifecycle import Trigger
from venagent.core.store import VenStore
from venagent.core.views import accepted_ack, metering_view, settled_event_ack, status_key, status_view

HISTORY_LIMIT = 100
# The status (and so the shadow) is refreshed at least this often, also when nothing changed.
STATUS_REFRESH_SEC = 30.0
# One baseline sample per driver poll round (1 s), however many devices report in it: a campus of
# 20 devices would otherwise put 20 samples a second into "the mean of the last 60".
BASELINE_SPACING_SEC = 0.5


class VenEngine:
    def __init__(self, config: VenConfig, store: VenStore, rng: random.Random) -> None:
        self._config = config
        self._store = store
        self._circuits = CircuitTracker.for_config(config.circuits, config.meter is not None, config.stale_after_sec)
        self._health = DeviceHealth(grace_sec=config.stale_after_sec)
        self._was_fresh = False
        self._rolling = RollingMeanBaseline(config.baseline_samples)
        self._mv_baseline = MeterBeforeBaseline(config.mv_baseline_window_sec)
        self._baseline_at = float("-inf")
        self._overrides = effective_overrides(config, store.load_overrides())
        self._ctl = EventController(
            config=config, store=store, rng=rng, circuits=self._circuits, overrides=MappingProxyType(self._overrides),
            mv_baseline=self._mv_baseline
        )
        self._handlers = CommandHandlers(self._ctl, store)
        self._cadence = MeteringCadence(config.metering_interval_sec)
        self._status_key: str | None = None
        self._status_at = float("-inf")
        self._adopt(config)

    def _adopt(self, config: VenConfig) -> None:
        """The one place the configuration reaches the engine's parts: at start and on every change."""
        self._config = config
        self._ctl.config = config
        self._cadence.interval_sec = config.metering_interval_sec
        self._circuits.stale_after_sec = config.stale_after_sec
        self._health.grace_sec = config.stale_after_sec
        self._mv_baseline.window_sec = config.mv_baseline_window_sec
        self._rolling = self._rolling.resized(config.baseline_samples)

    @property
    def config(self) -> VenConfig:
        return self._config

    # readings and time
    def on_readings(self, now: float, samples: Mapping[str, CircuitSample], meter_kw: float | None = None,
                    meter_read_ts: float | None = None, after_switch: bool = False) -> Effects:
        """Readings from a driver publish, or (``after_switch``) the shell's read-back of the circuits it
        just switched, asked for after the driver confirmed the switch."""
        fx = EffectsBuilder()
        self._circuits.merge(now, samples, meter_kw, meter_read_ts, after_switch=after_switch)
        total = self._freshness(now)
        if (total is not None and self._ctl.active() is None and not self._ctl.restores
                and not self._circuits.settling(now) and not after_switch
                and not self._baseline_at <= now < self._baseline_at + BASELINE_SPACING_SEC):
            # Baselines describe the building without DR: readings taken while shed, while the
            # restore steps back up, or before the last restore shows in readings would drag them
            # down (back-to-back events).
            self._rolling.add(now, total)
            self._mv_baseline.add(now, total)
            self._baseline_at = now
        # Enforce before the hold loop: a circuit that came back on explains the extra load, so
        # switching it off again beats shedding a further one.
        active = self._ctl.active()
        if active is not None:
            self._ctl.enforce(now, active, fx)
        self._ctl.reassert(now, fx)
        self._ctl.advance(now, fx)
        active = self._ctl.active()
        if active is not None and active.mv is not None and total is not None:
            active.mv.add_sample(now, total)
        self._maybe_metering(now, fx)
        return self._finish(now, fx)

    def metering_wait_sec(self, now: float) -> float:
        """How long until the next metering reading may go out, for a shell holding news that should
        not wait for the driver's next publish (a read-back of a switch)."""
        return self._cadence.wait_sec(now)

    def meter(self, now: float) -> Effects:
        """Emit the metering reading now if its slot allows, from the readings held (no new ones)."""
        fx = EffectsBuilder()
        self._freshness(now)
        self._maybe_metering(now, fx)
        return self._finish(now, fx)

    def tick(self, now: float) -> Effects:
        fx = EffectsBuilder()
        self._freshness(now)
        self._ctl.advance(now, fx)
        if not self._circuits.fresh(now):
            # No driver publish arrives to clock the readings: keep the cadence from here.
            self._maybe_metering(now, fx)
        return self._finish(now, fx)

    def _freshness(self, now: float) -> float | None:
        """The fresh total (None when stale); an active event's M&V does not bridge a stale spell."""
        total = self._circuits.fresh_total_kw(now)
        if total is None and self._was_fresh:
            active = self._ctl.active()
            if active is not None and active.mv is not None:
                active.mv.gap()
        self._was_fresh = total is not None
        return total

    def on_write_outcome(self, now: float, written: Iterable[str], failed: Mapping[str, str]) -> Effects:
        """The driver's answer to writes the shell performed: ``failed`` maps a circuit to the
        error (refused, or no answer within ``driver_timeout_sec``); the others were confirmed."""
        fx = EffectsBuilder()
        self._note_outcome(now, written, failed)
        return self._finish(now, fx)

    def _note_outcome(self, now: float, written: Iterable[str], failed: Mapping[str, str]) -> None:
        ok_devices: set[str] = set()
        errors: dict[str, str] = {}
        for name in written:
            cfg = self._circuits.configs.get(name)
            if cfg is None:
                continue
            self._circuits.note_write_outcome(now, name, confirmed=name not in failed)
            if name in failed:
                errors[cfg.device] = failed[name]
            else:
                ok_devices.add(cfg.device)
        self._health.note_writes(sorted(ok_devices - set(errors)), errors)

    def _finish(self, now: float, fx: EffectsBuilder) -> Effects:
        self._ctl.persist_if_stale(now)
        faults = self.device_faults(now)   # once: at 500 circuits each pass costs ~0.2 ms
        self._maybe_fault_messages(now, fx, faults)
        self._maybe_status(now, fx, faults)
        return fx.build()

    def device_faults(self, now: float) -> list[DeviceFault]:
        return self._health.faults(now, self._circuits, None if self._config.meter is None else self._config.meter.device)

    def _maybe_fault_messages(self, now: float, fx: EffectsBuilder, faults: list[DeviceFault]) -> None:
        for message in self._health.changes(now, faults):
            fx.publish(BusTopics.DEVICE_FAULT, message)

    def _current_shed_kw(self, now: float) -> float | None:
        active = self._ctl.active()
        total = self._circuits.fresh_total_kw(now)
        if total is None:
            return None
        if active is None or active.mv is None:
            return 0.0
        return active.mv.baseline_kw - total

    def _maybe_metering(self, now: float, fx: EffectsBuilder) -> None:
        faults = self.device_faults(now)
        if self._circuits.total_kw() is None and not faults:
            return  # nothing read yet, still within the start-up grace
        if not self._cadence.arrival(now):
            return
        active = self._ctl.active()
        fx.publish(
            BusTopics.METERING,
            metering_view(
                ven_id=self._config.thing_name,
                now=now,
                tracker=self._circuits,
                total_kw=self._circuits.fresh_total_kw(now),
                baseline_kw=self._rolling.value(now),
                shed_kw=self._current_shed_kw(now),
                active_event_id=None if active is None else active.event_id,
                stale=self._circuits.stale_circuits(now),
                faults=[f.to_dict() for f in faults],
            ),
        )

    def _maybe_status(self, now: float, fx: EffectsBuilder, faults: list[DeviceFault]) -> None:
        """Publish status when something a listener acts on changed (not on every kW wiggle), and at
        least every STATUS_REFRESH_SEC, so the shadow's kW are never older than that (a status taken
        before the first reading, with null kW, is replaced as soon as the readings are fresh)."""
        key = status_key(self._ctl.active(), self._ctl.scheduled(), self._overrides, faults,
                         self._circuits.snapshot_enabled(), self._circuits.stale_circuits(now))
        if key != self._status_key or now - self._status_at >= STATUS_REFRESH_SEC:
            self._status_key = key
            self._status_at = now
            fx.publish(BusTopics.STATUS, self.status(now))

    # commands
    def on_command(self, now: float, raw: bytes | str | Mapping[str, Any]) -> tuple[Ack, Effects]:
        """Both steps, with every write taken as confirmed by the driver (tests, simulations)."""
        pending = self.begin_command(now, raw)
        ack, done = self.complete_command(now, pending, written=pending.effects.writes, failed={})
        return ack, Effects(pending.effects.writes, pending.effects.messages + done.messages)

    def begin_command(self, now: float, raw: bytes | str | Mapping[str, Any]) -> PendingCommand:
        fx = EffectsBuilder()
        intake = take_in(raw, self._store, self._config, now)
        match intake:
            case Replay():
                return PendingCommand(intake.ack, fx.build(), intake.correlation_id, intake.fingerprint, replayed=True)
            case Refused():
                return PendingCommand(self._reject_ack(now, intake.rejection), fx.build(), intake.correlation_id,
                                      intake.fingerprint, store=intake.store)
            case Admitted():
                command = intake.command
            case _:
                assert_never(intake)
        try:
            ack = self._dispatch(now, command, fx)
        except CommandRejected as refused:  # the core's refusals become acks here, and only here
            event_id = getattr(command, "event_id", None)
            rejection = Rejection(intake.op, command.correlation_id, event_id, refused.code, refused.reason)
            return PendingCommand(self._reject_ack(now, rejection), fx.build(), intake.correlation_id,
                                  intake.fingerprint, store=True)
        # A rejection touched nothing, so only an accepted command has status or persistence to do.
        return PendingCommand(ack, self._finish(now, fx), intake.correlation_id, intake.fingerprint, store=True)

    def complete_command(self, now: float, pending: PendingCommand, *, written: Iterable[str],
                         failed: Mapping[str, str]) -> tuple[Ack, Effects]:
        """Settle the ack with the driver's answer to the command's writes, store it, publish it."""
        fx = EffectsBuilder()
        self._note_outcome(now, written, failed)
        ack = pending.ack
        if not pending.replayed:
            ack = self._settle_ack(now, ack)
            if pending.store and pending.correlation_id is not None:
                self._store.put_ack(pending.correlation_id, ack, self._config.ack_cache_size, pending.fingerprint)
        fx.publish(BusTopics.ACK, ack)
        return ack, self._finish(now, fx)

    def _settle_ack(self, now: float, ack: Ack) -> Ack:
        """An accepted ack of an active event says what is shed as far as the driver confirmed."""
        if ack.get("status") != "accepted" or ack.get("op") != Op.EVENT.value or ack.get("state") != "active":
            return ack
        event = self._ctl.events.get(str(ack.get("event_id")))
        if event is None:
            return ack
        return settled_event_ack(
            ack, event, confirmed=self._ctl.shed_kw_confirmed(event),
            faults="; ".join(f"{f.device}: {f.problem}" for f in self.device_faults(now)),
            unconfirmed=[n for n in event.shed_order if self._circuits.states[n].write_failed],
            unsheddable=lambda: self._ctl.unsheddable_reasons(now, event),
        )

    def _reject_ack(self, now: float, rejection: Rejection) -> Ack:
        return rejection_ack(rejection, now, self._config.thing_name)

    def _dispatch(self, now: float, command: Command, fx: EffectsBuilder) -> Ack:
        match command:  # exhaustive over the closed set of command kinds (mypy: assert_never)
            case EventCommand():
                return self._handlers.on_event(now, command, fx)
            case CancelCommand():
                return self._handlers.on_cancel(now, command, fx)
            case RestoreCommand():
                return self._handlers.on_restore(now, command, fx)
            case StatusCommand():
                ack = accepted_ack(op=Op.STATUS.value, now=now, correlation_id=command.correlation_id,
                                   ven_id=self._config.thing_name, event=None, state=None, actual_shed_kw=None)
                ack["status_snapshot"] = self.status(now)
                return ack
            case _:
                assert_never(command)

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
        # A circuit moved to another device or point leaves its old relay: like a removed one, it goes
        # back on there first (the shell still writes with the old config); the event sheds it anew.
        new_by_name = config.circuits_by_name
        moved = [n for n, old in self._circuits.configs.items() if n in new_by_name
                 and (old.device, old.enable_point) != (new_by_name[n].device, new_by_name[n].enable_point)]
        active = self._ctl.active()
        if active is not None:
            for name in [n for n in active.shed_order if n in removed or n in moved]:
                restore_on = active.pre_state.get(name) is not False
                self._ctl.release(now, active, name, "restore", fx, write=restore_on)
            self._ctl.persist(now, active)
        leftover = {s.name: True for s in self._ctl.drop_restores([*removed, *moved]) if s.name not in self._overrides}
        fx.write(now, leftover, "restore", None)
        for name in removed:
            self._overrides.pop(name, None)
        old_config_overrides = dict(self._config.overrides)
        self._adopt(config)
        self._circuits.reconfigure(config.circuits, config.meter is not None)
        for name in moved:  # what we knew was about the old relay
            self._circuits.states[name] = CircuitState()
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
            total_kw=self._circuits.fresh_total_kw(now),
            shed_kw=self._current_shed_kw(now),
            baseline_kw=self._rolling.value(now),
            active=self._ctl.active(),
            scheduled=self._ctl.scheduled(),
            stale=self._circuits.stale_circuits(now),
            faults=[f.to_dict() for f in self.device_faults(now)],
            now=now,
        )

    def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest events, newest first: window, state, how they ended and the M&V report."""
        keys = ("event_id", "state", "requested_shed_kw", "duration_sec", "start_ts", "end_ts", "ended_by",
                "ended_ts", "shed_order", "report")
        return [{k: doc.get(k) for k in keys} for doc in self._store.load_recent_events(limit)]

    def events(self) -> list[dict[str, Any]]:
        """Event state transitions, newest first (at most 100)."""
        return self._store.load_history(HISTORY_LIMIT)
