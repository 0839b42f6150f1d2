"""The one ``wait_until`` of the tests: poll a condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2, what: str = "condition",
               retry_on: tuple[type[BaseException], ...] = (),
               sleep: Callable[[float], None] = time.sleep) -> Any:
    """Poll ``predicate`` until truthy and return its value; ``TimeoutError`` after ``timeout`` s.

    ``retry_on``: errors that only mean "not yet" (e.g. an RPC to an agent still starting).
    ``sleep``: ``gevent.sleep`` where the awaited work runs in greenlets of this process."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except retry_on as exc:
            last = exc
        else:
            if last:
                return last
        sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
