from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backendbridge.backoff import FullJitterBackoff, full_jitter_delay
from backendbridge.limits import publish_problems, topic_problems


def test_topic_limits() -> None:
    assert topic_problems("ven/ack/volttron_thing") == []
    assert topic_problems("$aws/things/volttron_thing/shadow/update/delta") == []
    assert any("slashes" in p for p in topic_problems("a/b/c/d/e/f/g/h/i"))
    assert any("bytes" in p for p in topic_problems("x" * 257))
    assert any("wildcard" in p for p in topic_problems("ven/+/x"))
    assert any("wildcard" in p for p in topic_problems("ven/#"))
    assert topic_problems("") == ["empty topic"]


def test_publish_limits() -> None:
    assert publish_problems("ven/ack/t", b"x" * 131072, 1) == []
    assert any("payload" in p for p in publish_problems("ven/ack/t", b"x" * 131073, 1))
    assert any("qos" in p for p in publish_problems("ven/ack/t", b"{}", 2))


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=2**32))
def test_full_jitter_bounds(attempt: int, seed: int) -> None:
    delay = full_jitter_delay(attempt, 1.0, 30.0, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 2.0**min(attempt, 62))


def test_backoff_grows_then_resets_only_after_a_stable_connection() -> None:
    rng = random.Random(1)
    b = FullJitterBackoff(1.0, 30.0, rng, stable_after=30.0)
    delays = [b.next_delay() for _ in range(8)]
    assert b.attempt == 8
    assert all(0 <= d <= 30 for d in delays)
    b.connected(now=100.0)
    b.disconnected(now=105.0)  # flapped: keep growing
    assert b.attempt == 8
    b.connected(now=200.0)
    b.disconnected(now=231.0)  # stable
    assert b.attempt == 0
    # Determinism with an injected RNG.
    b1 = FullJitterBackoff(1.0, 30.0, random.Random(7))
    b2 = FullJitterBackoff(1.0, 30.0, random.Random(7))
    assert [b1.next_delay() for _ in range(5)] == [b2.next_delay() for _ in range(5)]


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FullJitterBackoff(0, 1, random.Random())
