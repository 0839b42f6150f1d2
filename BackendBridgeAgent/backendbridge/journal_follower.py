"""Following the VenAgent's journal: live bus messages in order, and a catch-up over every gap.

Pubsub does not queue for an absent subscriber, so every message the VenAgent publishes carries
``vepoch``/``vseq`` headers and stays in its journal. The follower keeps a cursor (the last
``(epoch, seq)`` queued, stored in the outbox with the message itself) and, on a gap or a new
epoch, asks the VEN for what it missed (``get_journal_since``). No VOLTTRON, no gevent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from backendbridge.errors import JournalUnavailable
from backendbridge.status import BridgeCounters

_log = logging.getLogger(__name__)

CATCH_UP_PAGE = 2000
_MAX_PAGES = 1000

Cursor = tuple[str, int]


class CursorStore(Protocol):
    def cursor(self) -> Cursor | None: ...
    def set_cursor(self, cursor: Cursor) -> None: ...


# fetch(epoch, seq, limit) -> the VEN's page: {"epoch", "messages": [[seq, topic, message]], "last_seq", "complete"}
Fetch = Callable[[str, int, int], Mapping[str, Any]]
# deliver(topic, message, cursor): queue the message (or skip it) and move the cursor
Deliver = Callable[[str, Any, Cursor | None], None]


class JournalFollower:
    def __init__(self, store: CursorStore, fetch: Fetch, deliver: Deliver, counters: BridgeCounters,
                 page: int = CATCH_UP_PAGE) -> None:
        self._store = store
        self._fetch = fetch
        self._deliver = deliver
        self._counters = counters
        self._page = page
        self.cursor: Cursor | None = store.cursor()

    def accept(self, topic: str, headers: Mapping[str, Any], message: Any) -> None:
        """A live bus message: deliver it once, in journal order, after what it follows."""
        epoch, vseq = headers.get("vepoch"), headers.get("vseq")
        if not isinstance(epoch, str) or not isinstance(vseq, int):
            self._deliver(topic, message, None)  # not from the VenAgent's journal
            return
        cur = self.cursor
        if cur is not None and (cur[0] != epoch or vseq > cur[1] + 1):
            self.catch_up()  # a gap, or the VEN restarted: fetch what we have not seen
            cur = self.cursor
        if cur is not None and cur[0] == epoch and vseq <= cur[1]:
            return  # already queued by a catch-up
        self._deliver(topic, message, (epoch, vseq))

    def catch_up(self) -> None:
        """Deliver what the VEN published after the cursor (pubsub drops it while we are down)."""
        for _ in range(_MAX_PAGES):
            cur = self.cursor
            if cur is None:
                return  # first start ever: nothing was missed
            try:
                page = self._fetch(cur[0], cur[1], self._page)
            except JournalUnavailable as exc:
                _log.warning("cannot catch up with the VEN's journal (%s); continuing with live messages", exc)
                return
            if not page.get("complete", True):
                self._counters.journal_resets += 1
                _log.warning("VEN journal restarted or evicted since %s:%d; catching up from %s", cur[0], cur[1],
                             page.get("epoch"))
            messages = page.get("messages") or []
            for seq, topic, message in messages:
                self._deliver(topic, message, (page["epoch"], int(seq)))
                self._counters.caught_up += 1
            if messages:
                _log.info("caught up %d message(s) from the VEN journal", len(messages))
            if len(messages) < self._page:
                if self.cursor is None or self.cursor[0] != page.get("epoch"):
                    self.skipped((page["epoch"], int(page.get("last_seq", 0))))
                return

    def skipped(self, cursor: Cursor | None) -> None:
        """A message handled without queueing it: the cursor moves on, stored on its own."""
        if cursor is not None:
            self._store.set_cursor(cursor)
            self.cursor = cursor

    def queued(self, cursor: Cursor | None) -> None:
        """A message queued together with its cursor (the outbox stored both at once)."""
        if cursor is not None:
            self.cursor = cursor
