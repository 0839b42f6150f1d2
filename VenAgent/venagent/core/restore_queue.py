"""The pending staggered-restore steps: persisted, run one switching at a time.

The plan is made by :func:`venagent.core.restore.plan_restore` when an event ends; this queue
keeps it across restarts and hands out one due step per round (:func:`take_due`), never
writing a circuit that is overridden or no longer configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from venagent.core.circuits import CircuitTracker
from venagent.core.effects import EffectsBuilder
from venagent.core.restore import RestoreStep, take_due
from venagent.core.store import VenStore


class RestoreQueue:
    def __init__(self, store: VenStore) -> None:
        self._store = store
        self.steps: list[RestoreStep] = [RestoreStep(*row) for row in store.load_restores()]
        # Not persisted: a VEN restart takes longer than any sensible restore spacing.
        self.last_switch_ts: float | None = None

    def __bool__(self) -> bool:
        return bool(self.steps)

    def _save(self) -> None:
        self._store.save_restores([(s.name, s.due_ts, s.event_id, s.kw_before) for s in self.steps])

    def add(self, steps: Iterable[RestoreStep]) -> None:
        self.steps.extend(steps)
        self._save()

    def take(self, wanted: Callable[[RestoreStep], bool]) -> list[RestoreStep]:
        """Remove and return the steps ``wanted`` selects (nothing is written for them)."""
        taken = [s for s in self.steps if wanted(s)]
        if taken:
            self.steps = [s for s in self.steps if s not in taken]
            self._save()
        return taken

    def drop(self, names: Iterable[str]) -> list[RestoreStep]:
        gone = set(names)
        return self.take(lambda s: s.name in gone)

    def run(self, now: float, fx: EffectsBuilder, *, spacing_sec: float, circuits: CircuitTracker,
            writable: Callable[[str], bool]) -> None:
        """Switch on the one step that is due, if any (``spacing_sec`` after the last switching)."""
        round_ = take_due(self.steps, now, spacing_sec=spacing_sec, writable=writable,
                          last_switch_ts=self.last_switch_ts)
        if round_.switch_on is None and not round_.dropped:
            return
        self.steps = list(round_.pending)
        step = round_.switch_on
        if step is not None:
            self.last_switch_ts = now
            circuits.note_write(now, step.name, True)
            fx.write(now, {step.name: True}, "restore", step.event_id)
        self._save()
