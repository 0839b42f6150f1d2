"""What each accepted command does to the events, and the state-dependent rejections.

* ``event`` with a new ``event_id`` creates an event; with a known one it modifies it (before or
  during; during → the shed set is re-selected against the new target). Finished events cannot
  be modified (CONFLICT). For an active event, ``duration_sec`` counts from its start and
  ``start_ts`` may not move into the future.
* Overlap rule: at most one event is active at a time; a window overlapping another scheduled or
  active event is rejected with CONFLICT naming it (see :mod:`venagent.core.events`).
* ``restore`` ends the active event early (completed, ended_by restore); with none it is a no-op.
* ``cancel``: scheduled → cancelled (no writes); active → cancelled + restore; unknown →
  UNKNOWN_EVENT; finished → CONFLICT.

Every rejection is raised as :class:`CommandConflict` *before* anything is mutated.
"""

from __future__ import annotations

from typing import Any

from ven_common.contract import Ack, EventState, Op, RejectReason

from venagent.core.commands import CancelCommand, EventCommand, RestoreCommand
from venagent.core.control import EventController
from venagent.core.effects import EffectsBuilder
from venagent.core.errors import CommandConflict
from venagent.core.events import EventRecord, first_overlap
from venagent.core.lifecycle import Trigger
from venagent.core.store import VenStore
from venagent.core.views import accepted_ack


class CommandHandlers:
    def __init__(self, ctl: EventController, store: VenStore) -> None:
        self._ctl = ctl
        self._store = store

    @property
    def _config(self) -> Any:
        return self._ctl.config

    def on_event(self, now: float, cmd: EventCommand, fx: EffectsBuilder) -> Ack:
        event = self._ctl.events.get(cmd.event_id)
        if event is None:
            event = self._create(now, cmd, fx)
        elif event.state is EventState.ACTIVE:
            self._modify_active(now, event, cmd, fx)
        else:
            self._modify_scheduled(now, event, cmd, fx)
        # actual_shed_kw, shortfall and note of an active event are settled by the engine once the
        # driver has answered the writes (VenEngine.complete_command).
        return accepted_ack(
            op=Op.EVENT.value, now=now, correlation_id=cmd.correlation_id, ven_id=self._config.thing_name,
            event=event, state=event.state, actual_shed_kw=0.0,
        )

    def _window(self, now: float, cmd: EventCommand) -> tuple[float, float]:
        if cmd.start_ts is None:
            return now, now + cmd.duration_sec
        return max(cmd.start_ts, now), cmd.start_ts + cmd.duration_sec

    def _check_overlap(self, start: float, end: float, exclude: str | None) -> None:
        other = first_overlap(self._ctl.events.values(), start, end, exclude)
        if other is not None:
            raise CommandConflict(
                RejectReason.CONFLICT,
                f"window [{start:.0f}, {end:.0f}) overlaps {other.state.value} event {other.event_id!r} "
                f"[{other.start_ts:.0f}, {other.end_ts:.0f}); modify or cancel that event instead",
            )

    def _create(self, now: float, cmd: EventCommand, fx: EffectsBuilder) -> EventRecord:
        finished = self._store.load_event(cmd.event_id)
        if finished is not None:
            raise CommandConflict(
                RejectReason.CONFLICT,
                f"event_id {cmd.event_id!r} is already {finished['state']}; a finished event cannot be modified",
            )
        start, end = self._window(now, cmd)
        self._check_overlap(start, end, exclude=None)
        event = EventRecord(cmd.event_id, cmd.correlation_id, cmd.shed_kw, cmd.duration_sec, start, end)
        self._ctl.admit(now, event, fx)
        return event

    def _modify_scheduled(self, now: float, event: EventRecord, cmd: EventCommand, fx: EffectsBuilder) -> None:
        start, end = self._window(now, cmd)
        self._check_overlap(start, end, exclude=event.event_id)
        self._ctl.rewindow(event, cmd.shed_kw, cmd.duration_sec, start, end)
        if start <= now and self._ctl.active() is None:
            self._ctl.activate(now, event, fx)
        else:
            self._ctl.persist(now, event)

    def _modify_active(self, now: float, event: EventRecord, cmd: EventCommand, fx: EffectsBuilder) -> None:
        if cmd.start_ts is not None and cmd.start_ts > now:
            raise CommandConflict(
                RejectReason.CONFLICT,
                f"event {event.event_id!r} is active: start_ts cannot move into the future; cancel it and create a new event",
            )
        base = event.start_ts if cmd.start_ts is None else cmd.start_ts
        end = base + cmd.duration_sec
        if end <= now:
            raise CommandConflict(
                RejectReason.OUT_OF_RANGE,
                f"duration_sec {cmd.duration_sec} from {base:.0f} ends before now ({now:.0f}); "
                "use restore or cancel to end the event",
            )
        self._check_overlap(event.start_ts, end, exclude=event.event_id)
        self._ctl.rewindow(event, cmd.shed_kw, cmd.duration_sec, event.start_ts, end)
        self._ctl.reselect(now, event, fx)
        self._ctl.persist(now, event)

    def on_cancel(self, now: float, cmd: CancelCommand, fx: EffectsBuilder) -> Ack:
        event = self._ctl.events.get(cmd.event_id)
        if event is None:
            finished = self._store.load_event(cmd.event_id)
            if finished is None:
                raise CommandConflict(RejectReason.UNKNOWN_EVENT, f"event_id {cmd.event_id!r} is not a known event")
            raise CommandConflict(RejectReason.CONFLICT, f"event_id {cmd.event_id!r} already ended ({finished['state']})")
        shed = self._ctl.shed_kw_committed(event) if event.state is EventState.ACTIVE else None
        if event.state is EventState.ACTIVE:
            self._ctl.end(now, event, Trigger.CANCEL, "cancel", fx, end_ts=now, restore_from=now)
        else:
            self._ctl.cancel(now, event, fx, "cancel")
        return accepted_ack(
            op=Op.CANCEL.value, now=now, correlation_id=cmd.correlation_id, ven_id=self._config.thing_name,
            event=event, state=event.state, actual_shed_kw=shed,
        )

    def on_restore(self, now: float, cmd: RestoreCommand, fx: EffectsBuilder) -> Ack:
        event = self._ctl.active()
        shed = None
        if event is not None:
            shed = self._ctl.shed_kw_committed(event)
            self._ctl.end(now, event, Trigger.RESTORE, "restore", fx, end_ts=now, restore_from=now)
        return accepted_ack(
            op=Op.RESTORE.value, now=now, correlation_id=cmd.correlation_id, ven_id=self._config.thing_name,
            event=event, state=None if event is None else event.state, actual_shed_kw=shed,
        )
