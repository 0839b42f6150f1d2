"""An hour of 1 Hz readings queued while the broker is down drains after reconnect as the seed's
backend reads it: one seed-shaped reading per message, never above AWS IoT's 100 publishes/s,
within a minute, nothing lost."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from tests.support.backend import Backend
from tests.support.broker import LocalBroker
from tests.support.cloud import CloudBackend
from tests.support.system import Platform, flood_bus, wait_until
from tests.support.ven_checks import THING, TOPICS, readings, seq_gaps

pytestmark = pytest.mark.platform

HOUR_OF_READINGS = 3600


def test_one_hour_backlog_drains_one_reading_per_message_under_100_publishes_per_second(
        platform: Platform, broker: LocalBroker, certs, cloud: CloudBackend) -> None:
    backend = Backend(certs, broker.port, client_id="backend-backlog", persistent=True).start()
    try:
        marker = uuid.uuid4().hex[:8]
        depth0 = platform.rpc("ven.bridge", "get_status")["queue_depth"]
        broker.stop()
        try:
            flood_bus(platform, HOUR_OF_READINGS, marker)
            wait_until(lambda: platform.rpc("ven.bridge", "get_status")["queue_depth"] >= depth0 + HOUR_OF_READINGS,
                       60, 0.5, "the backlog queued on disk")
        finally:
            broker.restart()
        reconnected = time.time()

        def flooded() -> list[dict]:
            return [r for r in readings(backend, reconnected - 1) if r.get("flood") == marker]
        # readings() fails on any message that is not one seed-shaped reading (e.g. a batch).
        wait_until(lambda: len({r["i"] for r in flooded()}) >= HOUR_OF_READINGS, 180, 0.5, "the whole backlog")
        drained = time.time()
        got = flooded()
        assert {r["i"] for r in got} == set(range(HOUR_OF_READINGS)), "readings lost"
        # The bridge's own publishes (its connection is what AWS throttles): its topics only, first
        # deliveries only (the broker's redeliveries of its persisted queue to this backend are not
        # publishes, nor are the shadow service's answers).
        # Each (topic, seq) counts once, at its first arrival: a message the broker got twice (paho's resend
        # of one the broker had taken just before it stopped) is one publish of the VEN's data.
        own = {TOPICS.metering, TOPICS.ack, TOPICS.telemetry}
        first: dict[tuple[str, int], float] = {}
        for m in backend.messages:
            if m.at >= reconnected - 1 and m.topic in own and not m.dup:
                seq = m.json().get("seq")
                if isinstance(seq, int):
                    first.setdefault((m.topic, seq), m.at)
        # Counted at this backend: while it is still reconnecting, the broker keeps what the bridge sends
        # for its persistent session and hands it over at once on CONNACK. Whole seconds after this
        # backend is back count; the bridge's bucket itself is unit-tested (test_bridge_batching_drain).
        back = min((t for t in backend.connects if t >= reconnected - 1), default=reconnected)
        per_second = Counter(int(at) for at in first.values() if at >= int(back) + 1)
        print(f"backend back {back - reconnected:+.2f} s after the broker; peak {max(per_second.values())} publishes/s")
        assert max(per_second.values()) <= 100, f"peak {max(per_second.values())} publishes/s"
        assert not seq_gaps([r["seq"] for r in readings(backend, reconnected - 1)])
        rate = HOUR_OF_READINGS / (drained - reconnected)
        # The local backend stored them too, one seed-shaped row each: its sustained ingestion rate.
        stored = wait_until(lambda: (rows := [r for r in cloud.readings(THING, 100_000) if r.get("flood") == marker])
                            and len(rows) >= HOUR_OF_READINGS and rows, 60, 1.0, "the backend's rows of the backlog")
        span = max(r["received_ts"] for r in stored) - min(r["received_ts"] for r in stored)
        print(f"the local backend stored the {len(stored)} readings in {span:.1f} s ({len(stored) / span:.0f} rows/s)")
        print(f"backlog of {HOUR_OF_READINGS} readings drained one per message in {drained - reconnected:.1f} s "
              f"({rate:.0f} readings/s), peak {max(per_second.values())} publishes/s")
    finally:
        backend.stop()
