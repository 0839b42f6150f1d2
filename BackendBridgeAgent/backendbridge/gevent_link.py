"""The only gevent-specific piece of the link: hand paho-thread callbacks to the hub.

paho's network thread is a real OS thread in an agent process (threading is not
monkey-patched), and gevent objects - including everything behind ``vip`` - belong to the
hub's thread. A hub ``async`` watcher is the one gevent primitive that may be signalled from
another thread; its callback runs in the hub and spawns a greenlet that runs the queued
callables in order (doing the work inside the watcher callback itself would raise
BlockingSwitchOutError as soon as it blocks).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

import gevent

_log = logging.getLogger(__name__)


class GeventHandoff:
    """``handoff(fn)`` from any thread; ``fn()`` later runs in a greenlet of this hub, FIFO.

    Create it in the hub's thread (the agent's main thread).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._wake)
        self._draining = False
        self._closed = False

    def __call__(self, fn: Callable[[], None]) -> None:
        if self._closed:
            return
        self._queue.put(fn)
        self._watcher.send()

    def _wake(self) -> None:
        if not self._draining:
            self._draining = True
            gevent.spawn(self._drain)

    def _drain(self) -> None:
        try:
            while True:
                try:
                    fn = self._queue.get_nowait()
                except queue.Empty:
                    return
                try:
                    fn()
                except Exception:  # noqa: BLE001 - one failing callback must not stop the queue (logged)
                    _log.exception("link callback failed")
        finally:
            self._draining = False
            # Something may have been queued after the last get_nowait and before the flag
            # was cleared; the watcher coalesces sends, so look once more.
            if not self._queue.empty() and not self._closed:
                self._wake()

    def close(self) -> None:
        self._closed = True
        self._watcher.stop()
        self._watcher.close()
