"""Backend registration (``POST {BACKEND_URL}/api/vens/``), one attempt at a time.

The shell runs :func:`register_once` in its own greenlet and sleeps
:meth:`RegistrationPolicy.next_delay` between attempts, so registration never blocks
forwarding. The backend being down is normal; it is retried with full-jitter back-off.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ven_common.contract import registration_body

from backendbridge.backoff import FullJitterBackoff


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...


PostFn = Callable[..., _Response]


@dataclass(frozen=True)
class RegistrationResult:
    ok: bool
    retry: bool
    status: int | None
    detail: str


def registration_url(backend_url: str) -> str:
    return backend_url.rstrip("/") + "/api/vens/"


def classify(status: int) -> RegistrationResult:
    """2xx and 409 (already registered) are success; 408/429/5xx are worth retrying."""
    if 200 <= status < 300 or status == 409:
        return RegistrationResult(True, False, status, "registered" if status != 409 else "already registered")
    if status in (408, 425, 429) or status >= 500:
        return RegistrationResult(False, True, status, f"backend answered {status}")
    return RegistrationResult(False, False, status, f"backend refused registration: {status}")


def register_once(
    post: PostFn,
    backend_url: str,
    thing: str,
    *,
    timeout: float = 5.0,
    lat: float = 37.7749,
    lon: float = -122.4194,
) -> RegistrationResult:
    """One POST; network errors become a retryable result instead of an exception."""
    body: Mapping[str, Any] = registration_body(thing, lat, lon)
    try:
        response = post(registration_url(backend_url), json=body, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - requests raises many types; all mean "try again later"
        return RegistrationResult(False, True, None, f"{type(exc).__name__}: {exc}"[:300])
    result = classify(int(response.status_code))
    if not result.ok:
        return RegistrationResult(result.ok, result.retry, result.status, f"{result.detail}: {response.text[:200]}")
    return result


class RegistrationPolicy:
    """The pure retry schedule: full-jitter delays, capped, no stable-connection reset."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self._backoff = FullJitterBackoff(base, cap, rng, stable_after=float("inf"))

    def next_delay(self) -> float:
        return self._backoff.next_delay()

    @property
    def attempts(self) -> int:
        return self._backoff.attempt
