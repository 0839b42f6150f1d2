from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from backendbridge.batching import PlannedMessage, plan_messages
from backendbridge.drain import Drainer, TokenBucket
from backendbridge.outbox import DEAD_LETTER, Outbox, OutboxItem

THING = "volttron_thing"
MAX = 128 * 1024


def item(seq: int, kind: str = "metering", payload: dict | None = None, topic: str | None = None) -> OutboxItem:
    topic = topic or ("volttron/metering" if kind == "metering" else f"ven/{kind}/{THING}")
    return OutboxItem(seq, kind, topic, payload if payload is not None else {"power_kw": 1.5, "ts": seq}, 0.0, seq)


def test_single_live_reading_goes_out_flat_with_seq() -> None:
    (msg,) = plan_messages([item(7)], ven_id=THING, batch_max_readings=100)
    assert json.loads(msg.payload) == {"power_kw": 1.5, "ts": 7, "seq": 7}
    assert msg.seqs == (7,)


def test_backlog_is_batched_and_other_kinds_are_single() -> None:
    items = [item(1), item(2), item(3), item(4, "ack"), item(5), item(6, "shadow", {"state": {}})]
    msgs = plan_messages(items, ven_id=THING, batch_max_readings=100)
    assert [m.seqs for m in msgs] == [(1, 2, 3), (4,), (5,), (6,)]
    batch = json.loads(msgs[0].payload)
    assert batch["batch"] is True and batch["venId"] == THING
    assert batch["seq"] == 1 and batch["seqs"] == [1, 2, 3] and len(batch["readings"]) == 3
    assert json.loads(msgs[1].payload)["seq"] == 4
    shadow = json.loads(msgs[3].payload)
    assert "seq" not in shadow and shadow["clientToken"] == "seq-6"


def test_batch_max_readings() -> None:
    msgs = plan_messages([item(i) for i in range(1, 251)], ven_id=THING, batch_max_readings=100)
    assert [len(m.seqs) for m in msgs] == [100, 100, 50]


def test_batches_split_by_size() -> None:
    big = {"blob": "x" * 30_000}
    msgs = plan_messages([item(i, payload=big) for i in range(1, 11)], ven_id=THING, batch_max_readings=100)
    assert all(len(m.payload) <= MAX for m in msgs)
    assert sum(len(m.seqs) for m in msgs) == 10 and len(msgs) >= 3


readings = st.dictionaries(
    st.text(max_size=10), st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3000)), max_size=6
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["metering", "metering", "metering", "ack", "telemetry"]), readings), max_size=300),
    st.integers(min_value=1, max_value=150),
)
def test_plan_invariants(spec: list[tuple[str, dict]], batch_max: int) -> None:
    items = [item(i + 1, kind, payload) for i, (kind, payload) in enumerate(spec)]
    msgs = plan_messages(items, ven_id=THING, batch_max_readings=batch_max)
    seen = [s for m in msgs for s in m.seqs]
    assert seen == [it.seq for it in items]  # order kept, each exactly once
    for m in msgs:
        assert len(m.seqs) <= batch_max
        if len(m.seqs) > 1:
            assert len(m.payload) <= MAX
            assert json.loads(m.payload)["seqs"] == list(m.seqs)


class FakeLink:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, bytes, int]] = []
        self.refuse = False

    def publish(self, topic: str, payload: bytes, qos: int, token: int) -> bool:
        if self.refuse:
            return False
        self.sent.append((topic, payload, token))
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, **kw: object) -> tuple[Outbox, FakeLink, Drainer, Clock]:
    ob = Outbox(tmp_path / "o.sqlite")
    link = FakeLink()
    clock = Clock()
    args = dict(ven_id=THING, batch_max_readings=100, max_inflight=100, max_publish_per_sec=100.0, clock=clock)
    args.update(kw)
    return ob, link, Drainer(ob, link, **args), clock  # type: ignore[arg-type]


def test_items_leave_only_on_puback(tmp_path: Path) -> None:
    ob, link, dr, _ = make(tmp_path)
    ob.enqueue("ack", f"ven/ack/{THING}", {"a": 1})
    assert dr.pump() is None
    assert len(link.sent) == 1 and ob.depth() == 1 and dr.inflight == 1
    assert dr.pump() is None and len(link.sent) == 1  # not sent twice
    dr.on_puback(link.sent[0][2])
    assert ob.depth() == 0 and dr.inflight == 0 and dr.acked == 1


def test_offline_sends_nothing_and_reset_resends(tmp_path: Path) -> None:
    ob, link, dr, _ = make(tmp_path)
    ob.enqueue("ack", "ven/ack/t", {"a": 1})
    link.connected = False
    assert dr.pump() is None and link.sent == []
    link.connected = True
    dr.pump()
    dr.reset()
    dr.pump()
    assert len(link.sent) == 2


def test_inflight_bound_and_rate_limit(tmp_path: Path) -> None:
    ob, link, dr, clock = make(tmp_path, max_inflight=3, max_publish_per_sec=10.0)
    for i in range(10):
        ob.enqueue("ack", "ven/ack/t", {"i": i})
    waits = dr.pump()
    assert len(link.sent) == 2  # burst of 2
    assert waits is not None and waits > 0
    clock.t += 1.0
    dr.pump()
    assert len(link.sent) == 3 and dr.inflight == 3  # in-flight bound
    for _, _, token in list(link.sent):
        dr.on_puback(token)
    clock.t += 10
    dr.pump()
    assert dr.inflight == 2 and ob.depth() == 7


def test_oversize_item_is_dead_lettered_not_blocking(tmp_path: Path) -> None:
    ob, link, dr, _ = make(tmp_path)
    ob.enqueue("ack", "ven/ack/t", {"blob": "x" * (130 * 1024)})
    ob.enqueue("ack", "ven/ack/t", {"ok": True})
    dr.pump()
    assert len(link.sent) == 1 and json.loads(link.sent[0][1])["ok"] is True
    assert ob.counter(DEAD_LETTER) == 1 and dr.dead_lettered == 1


def test_refused_publish_is_retried(tmp_path: Path) -> None:
    ob, link, dr, _ = make(tmp_path)
    ob.enqueue("ack", "ven/ack/t", {"a": 1})
    link.refuse = True
    assert dr.pump() == 0.5 and dr.inflight == 0
    link.refuse = False
    dr.pump()
    assert len(link.sent) == 1


def test_backlog_drains_in_batches(tmp_path: Path) -> None:
    ob, link, dr, clock = make(tmp_path)
    for i in range(1000):
        ob.enqueue("metering", "volttron/metering", {"i": i})
    while ob.depth():
        dr.pump()
        for _, _, token in list(link.sent[-100:]):
            dr.on_puback(token)
        clock.t += 1
    assert len(link.sent) == 10
    got = [r["i"] for _, p, _ in link.sent for r in json.loads(p)["readings"]]
    assert got == list(range(1000))


def test_token_bucket() -> None:
    clock = Clock()
    b = TokenBucket(rate=5, burst=1, clock=clock)
    assert b.try_take() and not b.try_take()
    assert abs(b.wait_time() - 0.2) < 1e-9
    clock.t = 0.2
    assert b.try_take()


def test_plannedmessage_is_frozen() -> None:
    m = PlannedMessage("t", b"{}", (1,), "ack")
    assert m.seqs == (1,)


def test_retransmits_after_a_reconnect_count_against_the_rate(tmp_path: Path) -> None:
    """paho re-sends every unacknowledged message on reconnect: the drainer waits for them."""
    ob, link, dr, clock = make(tmp_path, max_inflight=20, max_publish_per_sec=10.0)
    for i in range(40):
        ob.enqueue("ack", "ven/ack/t", {"i": i})
    for _ in range(10):
        dr.pump()
        clock.t += 0.1
    sent = len(link.sent)
    assert dr.inflight == sent  # no PUBACK yet: the broker went away
    dr.on_reconnected()  # paho re-sends those `sent` messages now
    window_start = clock.t
    while clock.t < window_start + 1.0:
        dr.pump()
        clock.t += 0.05
    assert (len(link.sent) - sent) + sent <= 10 + 2, "retransmits plus new publishes within one second"
