"""Event control: activation, initial shed, closed-loop hold, ending and staggered restore.

The :class:`EventController` owns the live events and the pending restore steps and applies the
pure rules (:mod:`shedding`, :mod:`hold`, :mod:`restore`, :mod:`lifecycle`) to the live circuit
state. It never writes a circuit that is overridden, and it only ever switches back on circuits
that this VEN switched off.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ven_common.contract import BusTopics, EventState

from venagent.core.baseline import Baseline
from venagent.core.circuits import CircuitTracker
from venagent.core.config import VenConfig
from venagent.core.effects import EffectsBuilder
from venagent.core.events import EventRecord
from venagent.core.hold import LastShed, decide_hold
from venagent.core.lifecycle import GuardContext, Trigger, next_state
from venagent.core.mv import MvAccumulator
from venagent.core.restore import RestoreStep, plan_restore
from venagent.core.restore_queue import RestoreQueue
from venagent.core.shedding import Candidate, Selection, select_shed
from venagent.core.store import VenStore
from venagent.core.views import report_view

# An active event's M&V accumulators reach disk at least this often.
PERSIST_EVERY_SEC = 10.0


# How long a commanded switch-off may take to show in readings before it is re-sent.
ENFORCE_AFTER_SEC = 5.0

class EventController:
    def __init__(
        self,
        *,
        config: VenConfig,
        store: VenStore,
        rng: random.Random,
        circuits: CircuitTracker,
        overrides: Mapping[str, bool],
        mv_baseline: Baseline,
    ) -> None:
        self.config = config
        self.store = store
        self.rng = rng
        self.circuits = circuits
        self.overrides = overrides  # the engine's, read-only: it alone pins and unpins circuits
        self.mv_baseline = mv_baseline
        self._events: dict[str, EventRecord] = {
            doc["event_id"]: EventRecord.from_dict(doc) for doc in store.load_live_events()
        }
        self.restores = RestoreQueue(store)

    # the live events: only the controller adds, changes the window of, and drops them
    @property
    def events(self) -> Mapping[str, EventRecord]:
        return MappingProxyType(self._events)

    def admit(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        """A new event: scheduled, or active at once when its window has begun."""
        self._events[event.event_id] = event
        self.transition(now, event, Trigger.CREATE, fx, new=True)
        if event.start_ts <= now:
            self.activate(now, event, fx)
        else:
            self.persist(now, event)

    @staticmethod
    def rewindow(event: EventRecord, shed_kw: float, duration_sec: float, start_ts: float, end_ts: float) -> None:
        """A modified event's request and window (the caller reselects or activates it)."""
        event.requested_shed_kw, event.duration_sec, event.start_ts, event.end_ts = shed_kw, duration_sec, start_ts, end_ts

    def cancel(self, now: float, event: EventRecord, fx: EffectsBuilder, ended_by: str) -> None:
        """A scheduled event that will not run: cancelled, stored, no longer live."""
        self.transition(now, event, Trigger.CANCEL, fx, ended_by=ended_by)
        event.ended_ts = now
        self.persist(now, event)
        del self._events[event.event_id]

    # queries
    def active(self) -> EventRecord | None:
        return next((e for e in self.events.values() if e.state is EventState.ACTIVE), None)

    def scheduled(self) -> list[EventRecord]:
        return sorted(
            (e for e in self.events.values() if e.state is EventState.SCHEDULED), key=lambda e: (e.start_ts, e.event_id)
        )

    def shed_kw_committed(self, event: EventRecord) -> float:
        """What the shed set drew before it was shed (what the VEN intends to hold off)."""
        return math.fsum(event.kw_before.get(n, 0.0) for n in event.shed_order)

    def shed_kw_confirmed(self, event: EventRecord) -> float:
        """The ack's ``actual_shed_kw``: what the circuits drew, in the last fresh reading before
        their switch-off, of those whose switch-off the driver confirmed (0 before any reading)."""
        if event.total_at_start is None:
            return 0.0
        return math.fsum(event.kw_before.get(n, 0.0) for n in event.shed_order
                         if n in self.circuits.states and not self.circuits.states[n].write_failed)

    def candidates(self, now: float, exclude: Iterable[str] = ()) -> list[Candidate]:
        """Sheddable now: known on, not critical, not overridden, min_on satisfied."""
        skip = set(exclude)
        out = []
        for name, cfg in self.circuits.configs.items():
            if name in skip or cfg.critical or name in self.overrides:
                continue
            if self.circuits.states[name].enabled is True and self.circuits.min_on_met(now, name):
                out.append(Candidate(name, self.circuits.kw_estimate(name), cfg.priority))
        return out

    def unsheddable_reasons(self, now: float, event: EventRecord) -> list[str]:
        """Why each circuit outside the shed set could not help (for the shortfall note)."""
        reasons = []
        for name, cfg in self.circuits.configs.items():
            if name in event.shed_order:
                continue
            state = self.circuits.states[name]
            if cfg.critical:
                reasons.append(f"{name} critical")
            elif name in self.overrides:
                reasons.append(f"{name} overridden")
            elif state.enabled is None:
                reasons.append(f"{name} no reading")
            elif not state.enabled:
                reasons.append(f"{name} off")
            elif not self.circuits.min_on_met(now, name):
                reasons.append(f"{name} within min_on_sec")
            elif self.circuits.kw_estimate(name) <= 0:
                reasons.append(f"{name} drawing 0 kW")
        return reasons

    # lifecycle
    def transition(
        self, now: float, event: EventRecord, trigger: Trigger, fx: EffectsBuilder, *, new: bool = False,
        ended_by: str | None = None,
    ) -> None:
        previous = None if new else event.state
        event.state = next_state(previous, trigger, GuardContext(now, event.start_ts, event.end_ts))
        message: dict[str, Any] = {
            "event_id": event.event_id,
            "state": event.state.value,
            "previous": None if previous is None else previous.value,
            "ts": now,
        }
        if ended_by is not None:
            event.ended_by = ended_by
            message["ended_by"] = ended_by
        fx.publish(BusTopics.EVENT_STATE, message)
        self.store.append_history(message)

    def persist(self, now: float, event: EventRecord) -> None:
        event.last_persist_ts = now
        self.store.save_event(event.to_dict())

    def persist_if_stale(self, now: float) -> None:
        event = self.active()
        if event is not None and (event.last_persist_ts is None or now - event.last_persist_ts >= PERSIST_EVERY_SEC):
            self.persist(now, event)

    # time
    def advance(self, now: float, fx: EffectsBuilder, missed_ended_by: str = "restart") -> None:
        """Apply everything that is due at ``now``: ends, starts, restore steps, the hold loop."""
        active = self.active()
        if active is not None and now >= active.end_ts:
            self.end(now, active, Trigger.END, "schedule", fx, end_ts=active.end_ts, restore_from=active.end_ts)
        for event in self.scheduled():
            if event.start_ts > now or self.active() is not None:
                continue
            if event.end_ts <= now:
                # Its whole window passed unseen (we were down): it never ran, so it is cancelled.
                self.cancel(now, event, fx, missed_ended_by)
            else:
                self.activate(now, event, fx)
        self.run_restores(now, fx)
        active = self.active()
        if active is not None:
            self.hold(now, active, fx)

    def activate(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        self.transition(now, event, Trigger.START, fx)
        self._adopt_pending_restores(event)
        if self.capture_start(now, event):
            self.initial_shed(now, event, fx)
        self.persist(now, event)

    def _adopt_pending_restores(self, event: EventRecord) -> None:
        """Circuits a previous event left off and not yet restored become this event's shed set.

        Otherwise their pre-event state would read "off" and they would never come back on.
        """
        adopted = self.restores.take(lambda s: s.name in self.circuits.configs and s.name not in self.overrides)
        # The plan runs most important first; shed order is the opposite (least important first).
        for step in reversed(adopted):
            event.pre_state[step.name] = True
            event.shed_order.append(step.name)
            event.kw_before[step.name] = step.kw_before
            event.shed_at[step.name] = self.circuits.states[step.name].off_since or step.due_ts

    def capture_start(self, now: float, event: EventRecord) -> bool:
        """Freeze pre-event state, total and M&V baseline; False while no fresh reading exists."""
        total = self.circuits.fresh_total_kw(now)
        if total is None:
            return False
        for name, enabled in self.circuits.snapshot_enabled().items():
            event.pre_state.setdefault(name, enabled)
        # Adopted circuits are off but belong to the building's normal load: count them in, so the
        # target is "normal minus requested" and they count towards the shed.
        adopted_kw = self.shed_kw_committed(event)
        event.total_at_start = total + adopted_kw
        baseline = self.mv_baseline.before(now)
        event.mv = MvAccumulator(baseline_kw=(total if baseline is None else baseline) + adopted_kw, start_ts=now)
        for name in event.shed_order:
            event.mv.circuit_shed(now, name, event.kw_before[name])
        event.mv.add_sample(now, total)
        return True

    def initial_shed(self, now: float, event: EventRecord, fx: EffectsBuilder) -> Selection:
        need = event.requested_shed_kw - self.shed_kw_committed(event)
        selection = select_shed(self.candidates(now, exclude=event.shed_order), need)
        self.shed(now, event, selection.chosen, "shed", fx)
        event.last_change_ts = now
        return selection

    def reselect(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        """The request changed mid-event: choose afresh among shed + sheddable circuits (on fresh
        readings only; otherwise the hold loop converges on the new target once they return)."""
        if event.total_at_start is None or not self.circuits.fresh(now):
            return
        current = [
            Candidate(n, event.kw_before.get(n, 0.0), self.circuits.configs[n].priority)
            for n in event.shed_order
            if n in self.circuits.configs
        ]
        selection = select_shed(current + self.candidates(now, exclude=event.shed_order), event.requested_shed_kw)
        keep = set(selection.chosen)
        for name in reversed(list(event.shed_order)):
            if name not in keep and self.circuits.min_off_met(now, name):
                self.release(now, event, name, "shed", fx)
        self.shed(now, event, [n for n in selection.chosen if n not in event.shed_order], "shed", fx)
        event.last_change_ts = now

    def shed(self, now: float, event: EventRecord, names: Iterable[str], reason: str, fx: EffectsBuilder) -> None:
        writes = {}
        for name in names:
            event.kw_before[name] = self.circuits.kw_estimate(name)
            event.shed_order.append(name)
            event.shed_at[name] = now
            if event.mv is not None:
                event.mv.circuit_shed(now, name, event.kw_before[name])
            self.circuits.note_write(now, name, False)
            writes[name] = False
        fx.write(now, writes, reason, event.event_id)

    def release(self, now: float, event: EventRecord, name: str, reason: str, fx: EffectsBuilder, *, write: bool = True) -> None:
        event.shed_order.remove(name)
        if event.mv is not None:
            event.mv.circuit_released(now, name)
        if write and name in self.circuits.configs and name not in self.overrides:
            self.circuits.note_write(now, name, True)
            fx.write(now, {name: True}, reason, event.event_id)

    def hold(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        # Stale readings would not show what the last shed did: shedding more on them is how a
        # driver outage once turned a 2 kW request into 8 kW shed.
        total = self.circuits.fresh_total_kw(now)
        if total is None:
            return
        if event.total_at_start is None:
            # Activated before any reading existed: this first reading is the start.
            if self.capture_start(now, event):
                self.initial_shed(now, event, fx)
                self.persist(now, event)
            return
        read_since = self.circuits.read_since()
        if read_since is None or (event.last_change_ts is not None and read_since < event.last_change_ts):
            return  # these values were read before the last switch: they cannot show its effect
        target = event.target_kw
        assert target is not None
        last = event.shed_order[-1] if event.shed_order else None
        last_shed = None
        if last is not None:
            allowed = self.circuits.min_off_met(now, last) and last not in self.overrides
            last_shed = LastShed(last, event.kw_before.get(last, 0.0), allowed)
        action = decide_hold(
            now=now,
            total_kw=total,
            target_kw=target,
            last_change_ts=event.last_change_ts,
            confirm_sec=self.config.hold_confirm_sec,
            candidates=self.candidates(now, exclude=event.shed_order),
            last_shed=last_shed,
        )
        if action.is_noop:
            return
        if action.shed:
            self.shed(now, event, action.shed, "hold", fx)
        if action.release is not None:
            self.release(now, event, action.release, "hold", fx)
        event.last_change_ts = now
        self.persist(now, event)

    def end(
        self, now: float, event: EventRecord, trigger: Trigger, ended_by: str, fx: EffectsBuilder, *, end_ts: float,
        restore_from: float,
    ) -> dict[str, Any] | None:
        """Complete/cancel an active event: close M&V, report, plan the staggered restore."""
        self.transition(now, event, trigger, fx, ended_by=ended_by)
        event.ended_ts = end_ts
        report = None
        if event.mv is not None:
            report = report_view(event=event, ven_id=self.config.thing_name, now=now, mv_fields=event.mv.finish(end_ts))
            event.report = report
            fx.publish(BusTopics.REPORT, report)
        steps = plan_restore(
            end_ts=restore_from,
            shed_order=[n for n in event.shed_order if n in self.circuits.configs],
            pre_state=event.pre_state,
            kw_before=event.kw_before,
            off_ready_at=self.circuits.off_ready_at,
            spacing_sec=self.config.restore_spacing_sec,
            jitter_sec=self.config.restore_jitter_sec,
            rng=self.rng,
            event_id=event.event_id,
        )
        event.shed_order.clear()
        self.restores.add(steps)
        self.persist(now, event)
        del self._events[event.event_id]
        self.run_restores(now, fx)
        return report

    def run_restores(self, now: float, fx: EffectsBuilder) -> None:
        # Overrides win, and a circuit removed from the config is no longer ours to write.
        self.restores.run(now, fx, spacing_sec=self.config.restore_spacing_sec, circuits=self.circuits,
                          writable=lambda name: name in self.circuits.configs and name not in self.overrides)

    def drop_restores(self, names: Iterable[str]) -> list[RestoreStep]:
        return self.restores.drop(names)

    def enforce(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        """Switch off again a shed circuit that readings show on: a device that reset (driver or
        platform restart), a manual switch at the panel, or a write that never landed."""
        stray = []
        for name in event.shed_order:
            state = self.circuits.states.get(name)
            if state is None or name in self.overrides or state.enabled is not True:
                continue
            if not self.circuits.circuit_fresh(now, name):
                continue  # "on" may be what a silent device said minutes ago
            if state.seen_ts is not None and state.off_since is not None and state.seen_ts < state.off_since:
                continue  # read before we switched it off
            if state.pending is False and state.off_since is not None and now - state.off_since < ENFORCE_AFTER_SEC:
                continue  # our write has not reached a reading yet (driver polls every few seconds)
            stray.append(name)
        if stray:
            for name in stray:
                self.circuits.note_write(now, name, False)
            fx.write(now, {name: False for name in stray}, "enforce", event.event_id)
            event.last_change_ts = now  # the hold loop waits for the meter to show the effect

    def reassert(self, now: float, fx: EffectsBuilder) -> None:
        """Send again a switch whose outcome is unknown (the driver refused it, timed out, or a
        device lost it) once fresh readings show the circuit in the other state."""
        again: dict[str, bool] = {}
        for name, state in self.circuits.states.items():
            want = state.pending
            if want is None or state.enabled is None or state.enabled == want:
                continue
            if state.write_ts is not None and (now - state.write_ts < ENFORCE_AFTER_SEC
                                               or state.seen_ts is None or state.seen_ts < state.write_ts):
                continue  # not yet a reading taken after the write
            if not self.circuits.circuit_fresh(now, name) or self.overrides.get(name, want) != want:
                continue
            again[name] = want
        for name, want in again.items():
            self.circuits.note_write(now, name, want)
        active = self.active()
        fx.write(now, again, "reassert", None if active is None else active.event_id)

    def reapply(self, now: float, event: EventRecord, fx: EffectsBuilder) -> None:
        """After a restart: re-assert the shed set and restart min_off clocks from when we shed."""
        writes = {n: False for n in event.shed_order if n in self.circuits.configs and n not in self.overrides}
        for name in writes:
            self.circuits.states[name].off_since = event.shed_at.get(name, now)
        fx.write(now, writes, "resume", event.event_id)
        if event.mv is not None:
            event.mv.gap()
        event.last_change_ts = now
