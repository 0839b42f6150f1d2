"""Full-jitter exponential back-off (AWS architecture blog, "Exponential Backoff And Jitter").

Full jitter spreads the reconnects of many VENs after a shared outage instead of having them
hammer the endpoint in lock-step, which plain doubling (paho's default) does.
"""

from __future__ import annotations

import random


def full_jitter_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """uniform(0, min(cap, base * 2**attempt)); the exponent is clamped to avoid overflow."""
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 62)))
    return rng.uniform(0.0, ceiling)


class FullJitterBackoff:
    """Attempt counter + delay policy; ``attempt`` resets once a connection proved stable."""

    def __init__(
        self,
        base: float,
        cap: float,
        rng: random.Random,
        stable_after: float = 30.0,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.stable_after = stable_after
        self._rng = rng
        self.attempt = 0
        self._connected_at: float | None = None

    def next_delay(self) -> float:
        delay = full_jitter_delay(self.attempt, self.base, self.cap, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

    def connected(self, now: float) -> None:
        self._connected_at = now

    def disconnected(self, now: float) -> None:
        # A connection that flaps right after CONNACK (e.g. policy rejects, duplicate client
        # id) must keep growing the delay; only a stable one earns a fresh start.
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self.attempt = 0
        self._connected_at = None
