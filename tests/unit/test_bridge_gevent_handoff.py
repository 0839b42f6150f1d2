from __future__ import annotations

import threading

import gevent
import pytest

from backendbridge.gevent_link import GeventHandoff


def test_callables_from_an_os_thread_run_in_the_hub_in_order() -> None:
    handoff = GeventHandoff()
    got: list[tuple[int, bool]] = []
    hub_thread = threading.get_ident()

    def producer() -> None:
        for i in range(200):
            handoff(lambda i=i: got.append((i, threading.get_ident() == hub_thread)))

    t = threading.Thread(target=producer)
    t.start()
    with gevent.Timeout(5):
        while len(got) < 200:
            gevent.sleep(0.01)
    t.join()
    handoff.close()
    assert [i for i, _ in got] == list(range(200))
    assert all(in_hub for _, in_hub in got)


def test_failing_callable_does_not_stop_the_rest() -> None:
    handoff = GeventHandoff()
    got: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    handoff(bad)
    handoff(lambda: got.append(1))
    with gevent.Timeout(5):
        while not got:
            gevent.sleep(0.01)
    handoff.close()
    assert got == [1]
    pytest.importorskip("gevent")
