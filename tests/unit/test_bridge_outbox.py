from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backendbridge.outbox import DEAD_LETTER, DROPPED, Outbox

REPO = Path(__file__).resolve().parents[2]


def test_fifo_seq_and_ack(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    seqs = [ob.enqueue("metering", "volttron/metering", {"i": i}) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [it.payload["i"] for it in ob.peek(10)] == [0, 1, 2, 3, 4]
    assert [it.seq for it in ob.peek(2, after_seq=seqs[1])] == seqs[2:4]
    assert ob.ack(seqs[:2]) == 2
    assert ob.depth() == 3
    assert ob.ack([999]) == 0


def test_seq_monotonic_across_reopen_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    last = [ob.enqueue("ack", "t", {"n": i}) for i in range(3)][-1]
    ob.ack([last])  # delete the newest: AUTOINCREMENT must not reuse its seq
    ob.close()
    ob = Outbox(path)
    assert ob.depth() == 2
    nxt = ob.enqueue("ack", "t", {"n": 9})
    assert nxt > last and ob.last_seq() == nxt


def test_drop_oldest_is_counted_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path, max_messages=3)
    for i in range(10):
        ob.enqueue("metering", "m", {"i": i})
    assert ob.depth() == 3
    assert [it.payload["i"] for it in ob.peek(10)] == [7, 8, 9]
    assert ob.counter(DROPPED) == 7
    ob.close()
    assert Outbox(path, max_messages=3).counters()[DROPPED] == 7


def test_the_byte_bound_drops_the_oldest_and_the_count_follows_every_removal(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path, max_bytes=10_000)
    reading = {"pad": "x" * 990}   # ~1,000 bytes as stored: about 9 fit
    seqs = [ob.enqueue("metering", "m", dict(reading, i=i)) for i in range(25)]
    assert ob.size_bytes() <= 10_000 and 8 <= ob.depth() <= 9
    kept = [it.payload["i"] for it in ob.peek(100)]
    assert kept == list(range(25 - len(kept), 25)), "the newest are kept, in order"
    assert ob.counter(DROPPED) == 25 - len(kept)
    # ack, dead letter and supersede all give the bytes back; a reopened outbox counts the same
    ob.ack([seqs[-1]])
    ob.dead_letter([seqs[-2]], "test")
    ob.enqueue("shadow", "s", {"v": 1})
    ob.enqueue("shadow", "s", {"v": 2}, supersede=True)
    queued = ob.size_bytes()
    ob.close()
    again = Outbox(path, max_bytes=10_000)
    assert again.size_bytes() == queued and again.depth() == len(kept) - 2 + 1


def test_supersede_and_dead_letter(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue("shadow", "s", {"v": 1})
    ob.enqueue("ack", "a", {"x": 1})
    ob.enqueue("shadow", "s", {"v": 2}, supersede=True)
    assert [(i.kind, i.payload) for i in ob.peek(10)] == [("ack", {"x": 1}), ("shadow", {"v": 2})]
    assert ob.counters()["superseded"] == 1
    seq = ob.peek(1)[0].seq
    assert ob.dead_letter([seq], "payload too big") == 1
    assert ob.depth() == 1 and ob.counter(DEAD_LETTER) == 1
    assert ob.dead_letters()[0]["reason"] == "payload too big"


def test_oldest_age(tmp_path: Path) -> None:
    now = [1000.0]
    ob = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    assert ob.oldest_age() is None
    ob.enqueue("ack", "a", {})
    now[0] = 1012.5
    assert ob.oldest_age() == pytest.approx(12.5)


def test_rejects_non_json_payloads(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(ValueError):
        ob.enqueue("ack", "a", {"x": float("nan")})
    assert ob.depth() == 0


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from backendbridge.outbox import Outbox
    ob = Outbox(sys.argv[1])
    i = 0
    while True:
        seq = ob.enqueue("metering", "volttron/metering", {"i": i, "pad": "x" * 200})
        print(seq, flush=True)
        i += 1
    """
)


def test_survives_sigkill_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(REPO / "BackendBridgeAgent")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    confirmed: list[int] = []
    for line in proc.stdout:
        confirmed.append(int(line))
        if len(confirmed) >= 500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    ob = Outbox(path)
    assert ob._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {it.seq for it in ob.peek(1_000_000)}
    # Every seq the writer saw committed is there (the writer may have committed a few more).
    assert set(confirmed) <= stored
    assert ob.depth() == len(stored)
    assert ob.enqueue("ack", "a", {}) > max(stored)


def test_journal_cursor_is_stored_with_the_message_and_survives_reopen(tmp_path) -> None:
    from backendbridge.outbox import Outbox

    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    assert ob.cursor() is None
    ob.enqueue("metering", "volttron/metering", {"a": 1}, cursor=("ep", 7))
    ob.set_cursor(("ep", 9))
    ob.close()
    again = Outbox(path)
    assert again.cursor() == ("ep", 9)
    assert again.depth() == 1


def test_stream_seq_is_contiguous_per_topic_whatever_else_is_queued(tmp_path) -> None:
    from backendbridge.outbox import Outbox

    ob = Outbox(tmp_path / "o.sqlite")
    ob.enqueue("metering", "volttron/metering", {"i": 1})
    ob.enqueue("shadow", "$aws/things/t/shadow/update", {"s": 1}, supersede=True)
    ob.enqueue("shadow", "$aws/things/t/shadow/update", {"s": 2}, supersede=True)
    ob.enqueue("ack", "ven/ack/t", {"a": 1})
    ob.enqueue("metering", "volttron/metering", {"i": 2})
    items = ob.peek(10)
    metering = [i.stream_seq for i in items if i.topic == "volttron/metering"]
    assert metering == [1, 2]
    assert [i.stream_seq for i in items if i.topic == "ven/ack/t"] == [1]
    assert "stream:volttron/metering" not in ob.counters()
