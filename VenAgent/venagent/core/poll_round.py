"""A driver poll round: the ``/all`` publishes of one round become one engine step.

The platform driver publishes each device's ``/all`` on its own, a few milliseconds apart within a 1 s poll. Stepping
the engine per publish would, on a campus of 20 devices, take 20 steps (and 20 baseline samples) a second. So a round
is held until every device the building reads has reported (its circuits' devices and the meter's): a one-device
building goes at once. A round still incomplete after ``COALESCE_SEC`` is taken as it is: a device that does not
publish is a fault the engine sees as staleness, never a reason to wait.

Pure: the shell feeds publishes, keeps the one deadline timer this asks for, and takes the round when told.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from venagent.core.config import VenConfig

# platform-driver publishes every device of a 1 s poll within a few ms of the others.
COALESCE_SEC = 0.1


class Step(enum.Enum):
    IGNORE = "ignore"  # not a device of this building
    TAKE = "take"      # the round is complete: take it now
    WAIT = "wait"      # the first of an incomplete round: take it in COALESCE_SEC at the latest
    HELD = "held"      # held in a round whose deadline is already set


@dataclass
class PollRound:
    devices: frozenset[str]
    held: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    waiting: bool = False

    @classmethod
    def for_config(cls, config: VenConfig) -> PollRound:
        meter = {config.meter.device} if config.meter is not None else set()
        return cls(frozenset(config.circuits_by_device) | meter)

    def offer(self, device: str, values: Mapping[str, Any]) -> Step:
        if device not in self.devices:
            return Step.IGNORE
        self.held[device] = values
        if self.devices <= self.held.keys():
            return Step.TAKE
        if self.waiting:
            return Step.HELD
        self.waiting = True
        return Step.WAIT

    def take(self) -> dict[str, Mapping[str, Any]]:
        held, self.held, self.waiting = self.held, {}, False
        return held
