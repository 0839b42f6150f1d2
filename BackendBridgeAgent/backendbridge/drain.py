"""Moves outbox items to the cloud link: in seq order, rate-limited, bounded in flight.

Pure logic: the shell calls :meth:`Drainer.pump` from one greenlet and feeds PUBACKs to
:meth:`Drainer.on_puback`. Rows leave the outbox only on PUBACK, so a crash at any point
re-sends (at-least-once; ``seq`` lets the backend drop the duplicates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from backendbridge.batching import plan_messages
from backendbridge.limits import publish_problems
from backendbridge.outbox import Outbox

QOS = 1
_PEEK_BATCHES = 4
_PEEK_MIN = 200  # rows read per outbox query, whatever the batching
_PER_PUMP = 50  # yield to other greenlets after this many publishes
_RETRY_AFTER_REFUSAL = 0.5


class LinkPort(Protocol):
    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, qos: int, token: int) -> bool: ...


class TokenBucket:
    """At most ``rate`` publishes per second on average, bursts of at most ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def charge(self, count: int) -> None:
        """Count publishes made outside :meth:`try_take` (the tokens may go negative)."""
        self._refill()
        self._tokens -= count


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        link: LinkPort,
        *,
        ven_id: str,
        batch_max_readings: int,
        max_inflight: int,
        max_publish_per_sec: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.ven_id = ven_id
        self.batch_max_readings = batch_max_readings
        self.max_inflight = max_inflight
        # A burst of 2: in any one-second window at most rate + 2 publishes leave, retransmits included
        # (AWS IoT throttles a connection above 100 publishes/s).
        self.bucket = TokenBucket(max_publish_per_sec, 2.0, clock)
        self._inflight: dict[int, tuple[int, ...]] = {}
        self._cursor = 0
        self._next_token = 1
        self.sent = 0
        self.acked = 0
        self.items_acked = 0
        self.dead_lettered = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def on_reconnected(self) -> None:
        """paho re-sends every unacknowledged QoS-1 message at once on reconnect: those count
        against the publish rate like any other."""
        self.bucket.charge(len(self._inflight))

    def reset(self) -> None:
        """Forget what was handed to a link that no longer exists: all of it is sent again."""
        self._inflight.clear()
        self._cursor = 0

    def on_puback(self, token: int) -> None:
        seqs = self._inflight.pop(token, None)
        if seqs is None:
            return
        self.acked += 1
        self.items_acked += len(seqs)
        self.outbox.ack(seqs)

    def pump(self) -> float | None:
        """Publish what is allowed now.

        Returns seconds until the next pump is useful, 0.0 to be called again right away
        (after yielding), or None to sleep until woken (new item, PUBACK, connect).
        """
        if not self.link.connected:
            return None
        published = 0
        while True:
            room = self.max_inflight - len(self._inflight)
            if room <= 0:
                return None
            items = self.outbox.peek(max(_PEEK_MIN, self.batch_max_readings * _PEEK_BATCHES), after_seq=self._cursor)
            if not items:
                return None
            for msg in plan_messages(items, ven_id=self.ven_id, batch_max_readings=self.batch_max_readings):
                problems = publish_problems(msg.topic, msg.payload, QOS)
                if problems:
                    # paho would resend an oversize message forever and block the queue.
                    self.outbox.dead_letter(msg.seqs, "; ".join(problems))
                    self.dead_lettered += len(msg.seqs)
                    self._cursor = max(self._cursor, *msg.seqs)
                    continue
                if len(self._inflight) >= self.max_inflight:
                    return None
                if published >= _PER_PUMP:
                    return 0.0
                if not self.bucket.try_take():
                    return self.bucket.wait_time()
                token = self._next_token
                self._next_token += 1
                # Recorded before publishing: the PUBACK may be processed before publish returns.
                self._inflight[token] = msg.seqs
                if not self.link.publish(msg.topic, msg.payload, QOS, token):
                    del self._inflight[token]
                    return _RETRY_AFTER_REFUSAL
                self._cursor = max(self._cursor, *msg.seqs)
                self.sent += 1
                published += 1
