"""Metering cadence: one reading per interval from jittery driver publishes, none skipped."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from venagent.core.cadence import MeteringCadence


def _emitted(cadence: MeteringCadence, arrivals: list[float]) -> list[float]:
    return [t for t in arrivals if cadence.arrival(t)]


def test_one_late_publish_does_not_cost_a_reading() -> None:
    # The old "≥ 0.9·interval since the last" gate dropped 3.0 here (0.85 s after 2.15): a 1.85 s hole.
    arrivals = [0.0, 1.0, 2.15, 3.0, 4.0]
    assert _emitted(MeteringCadence(1.0), arrivals) == arrivals


@settings(max_examples=300, deadline=None)
@given(delay=st.lists(st.floats(0.0, 0.45), min_size=20, max_size=200))
def test_every_publish_is_a_reading_while_delays_stay_below_half_a_period(delay: list[float]) -> None:
    # The driver publishes on its own timer; each publish reaches the VEN some delay later.
    arrivals = [k + d for k, d in enumerate(delay)]
    assert _emitted(MeteringCadence(1.0), arrivals) == arrivals


@settings(max_examples=300, deadline=None)
@given(devices=st.integers(2, 8), delay=st.lists(st.lists(st.floats(0.0, 0.4), min_size=8, max_size=8),
                                                  min_size=20, max_size=80))
def test_several_devices_give_one_reading_per_poll(devices: int, delay: list[list[float]]) -> None:
    cadence = MeteringCadence(1.0)
    per_poll = []
    for k, poll in enumerate(delay):
        arrivals = sorted(k + d for d in poll[:devices])
        per_poll.append(len(_emitted(cadence, arrivals)))
    assert per_poll == [1] * len(delay)


@settings(max_examples=200, deadline=None)
@given(every=st.integers(2, 10), delay=st.lists(st.floats(0.0, 0.45), min_size=60, max_size=60))
def test_a_longer_interval_takes_every_nth_publish(every: int, delay: list[float]) -> None:
    arrivals = [k + d for k, d in enumerate(delay)]
    emitted = _emitted(MeteringCadence(float(every)), arrivals)
    gaps = [b - a for a, b in itertools.pairwise(emitted)]
    assert all(every - 1 < g < every + 1 for g in gaps), gaps


@settings(max_examples=200, deadline=None)
@given(interval=st.floats(1.05, 9.5))
def test_an_interval_that_is_no_multiple_of_the_poll_keeps_its_rate(interval: float) -> None:
    emitted = _emitted(MeteringCadence(interval), [float(k) for k in range(1000)])
    assert abs(len(emitted) - 1000 / interval) <= 2
    assert all(b - a >= interval / 2 for a, b in itertools.pairwise(emitted))


def test_a_burst_after_a_stall_is_one_reading_not_several() -> None:
    cadence = MeteringCadence(1.0)
    assert _emitted(cadence, [0.0, 1.0, 2.0, 3.0, 6.0, 6.01, 6.02, 7.0]) == [0.0, 1.0, 2.0, 3.0, 6.0, 7.0]
    slow = MeteringCadence(5.0)
    emitted = _emitted(slow, [0.0, 5.0, 10.0, *[70.0 + k for k in range(30)]])
    assert all(b - a >= 4.0 for a, b in itertools.pairwise(emitted)), emitted


def test_interval_change_applies_at_once() -> None:
    cadence = MeteringCadence(1.0)
    assert _emitted(cadence, [0.0, 1.0, 2.0, 3.0]) == [0.0, 1.0, 2.0, 3.0]
    cadence.interval_sec = 2.0
    assert _emitted(cadence, [4.0, 5.0, 6.0, 7.0, 8.0]) == [5.0, 7.0]


def test_a_clock_stepped_back_does_not_stop_metering() -> None:
    cadence = MeteringCadence(1.0)
    assert _emitted(cadence, [1000.0, 1001.0, 1002.0]) == [1000.0, 1001.0, 1002.0]
    assert _emitted(cadence, [10.0, 11.0, 12.0]) == [10.0, 11.0, 12.0]


def test_a_reading_ready_early_goes_out_at_the_first_open_moment_and_the_slot_is_not_served_twice() -> None:
    """A read-back 0.15 s after a slot's reading: not before half an interval since the last one,
    then it takes the next slot (whose driver publish then passes), never two readings per slot."""
    cadence = MeteringCadence(1.0)
    assert cadence.earliest() is None and cadence.arrival(10.0)
    assert not cadence.arrival(10.15)                 # the read-back: too soon
    assert cadence.earliest() == 10.5
    assert cadence.arrival(10.5)                      # metered at the first open moment
    assert not cadence.arrival(11.0)                  # the next publish: its slot was served early
    assert _emitted(cadence, [12.0, 13.0, 14.0]) == [12.0, 13.0, 14.0]
