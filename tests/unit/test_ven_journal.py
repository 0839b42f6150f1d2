from venagent.journal import Journal


def test_since_returns_what_was_missed_in_order() -> None:
    j = Journal(capacity=10, epoch="e1")
    for i in range(5):
        j.append("ven/metering", {"i": i})
    got = j.since("e1", 2)
    assert [m[0] for m in got["messages"]] == [3, 4, 5] and got["complete"]
    assert got["messages"][0][2] == {"i": 2}


def test_eviction_and_new_epoch_are_reported_incomplete() -> None:
    j = Journal(capacity=3, epoch="e1")
    for i in range(6):
        j.append("t", i)
    evicted = j.since("e1", 1)
    assert [m[0] for m in evicted["messages"]] == [4, 5, 6] and not evicted["complete"]
    restarted = j.since("old-epoch", 99)
    assert [m[0] for m in restarted["messages"]] == [4, 5, 6] and not restarted["complete"]
    assert j.since("e1", 6) == {"epoch": "e1", "last_seq": 6, "complete": True, "messages": []}


def test_limit_pages_through() -> None:
    j = Journal(capacity=100, epoch="e")
    for i in range(10):
        j.append("t", i)
    first = j.since("e", 0, limit=4)
    assert [m[0] for m in first["messages"]] == [1, 2, 3, 4]
    assert [m[0] for m in j.since("e", 4, limit=4)["messages"]] == [5, 6, 7, 8]


def test_a_journal_file_keeps_epoch_numbering_and_entries_across_restarts(tmp_path) -> None:
    path = str(tmp_path / "journal.sqlite")
    first = Journal(capacity=5, path=path)
    for i in range(7):
        first.append("ven/metering", {"i": i})
    epoch = first.epoch
    first.close()
    again = Journal(capacity=5, path=path)
    assert again.epoch == epoch and again.last_seq == 7
    got = again.since(epoch, 4)
    assert [m[0] for m in got["messages"]] == [5, 6, 7] and got["complete"]
    assert got["messages"][-1][2] == {"i": 6}
    assert again.append("ven/ack", {"x": 1}) == 8


def test_the_file_stays_bounded_and_only_the_last_capacity_entries_count(tmp_path) -> None:
    import sqlite3

    from venagent.journal import TRIM_EVERY

    path = str(tmp_path / "journal.sqlite")
    j = Journal(capacity=50, path=path)
    for i in range(3 * TRIM_EVERY + 7):
        j.append("ven/metering", {"i": i})
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    assert rows <= 50 + TRIM_EVERY
    got = j.since(j.epoch, 0, limit=100)
    assert [m[0] for m in got["messages"]] == list(range(j.last_seq - 49, j.last_seq + 1))
    assert not got["complete"]
    tail = j.since(j.epoch, j.last_seq - 10)
    assert tail["complete"] and tail["messages"][-1][2] == {"i": 3 * TRIM_EVERY + 6}


def test_the_file_keeps_at_most_max_bytes_of_the_newest_messages(tmp_path) -> None:
    import sqlite3

    from venagent.journal import TRIM_EVERY

    path = str(tmp_path / "journal.sqlite")
    j = Journal(capacity=100_000, path=path, max_bytes=50_000)
    for i in range(2 * TRIM_EVERY):
        j.append("volttron/metering", {"i": i, "pad": "x" * 190})   # ~200 bytes each
    size = sqlite3.connect(path).execute("SELECT SUM(LENGTH(message)) FROM journal").fetchone()[0]
    assert 45_000 < size <= 50_000
    got = j.since(j.epoch, 0, limit=10_000)
    assert not got["complete"] and got["messages"][-1][0] == j.last_seq
    assert j.since(j.epoch, j.last_seq - 5)["complete"]
