"""What the bridge reports in the Device Shadow, and what it does with a delta.

It keeps the VEN's latest status, the desired settings the VEN took (echoed as reported) and
those it refused, and the version sync with the shadow service. The shell decides when to push
(debounced status, a periodic refresh, a reconnect) and makes the VEN's RPC; this holds the state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from backendbridge.shadow import DeltaOutcome, ShadowVersionSync, apply_delta, build_reported

_log = logging.getLogger(__name__)

_SHADOW_MARGIN = 200  # room for "version" and "clientToken" added after building
MAX_REPORTED_BYTES = 8 * 1024 - _SHADOW_MARGIN


def _ven_answer(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The VEN's answer to ``apply_shadow_config``: (accepted, refused with reasons). A VEN of an earlier version
    answered with the accepted settings only."""
    if isinstance(result, dict) and set(result) == {"accepted", "refused"}:
        accepted, refused = result["accepted"], result["refused"]
        return (accepted if isinstance(accepted, dict) else {}), (refused if isinstance(refused, dict) else {})
    return (result if isinstance(result, dict) else {}), {}


class ShadowReporter:
    def __init__(self) -> None:
        self.sync = ShadowVersionSync()
        self.latest_status: dict[str, Any] | None = None
        self.desired_echo: dict[str, Any] = {}
        self.desired_refused: dict[str, str] = {}

    def note_status(self, message: Any) -> None:
        """A ``ven/status`` message (anything but a dict leaves the last one in place)."""
        if isinstance(message, dict):
            self.latest_status = message

    def document(self, bridge_counters: Mapping[str, Any], version: int | None = None) -> dict[str, Any]:
        """The ``update`` document: a fresh one, or one for ``version`` after a conflict."""
        echo: dict[str, Any] = dict(self.desired_echo)
        if self.desired_refused:
            echo["desired_refused"] = dict(self.desired_refused)
        doc = build_reported(self.latest_status, bridge=bridge_counters, desired_echo=echo,
                             max_bytes=MAX_REPORTED_BYTES)
        if version is None:
            self.sync.fresh_update()
        else:
            doc["version"] = version
        return doc

    def take_delta(self, doc: Mapping[str, Any]) -> DeltaOutcome:
        """A ``update/delta``: which keys go to the VEN (``change``) and which are refused here."""
        self.sync.on_delta(doc)
        return apply_delta(doc.get("state"))

    def settle(self, outcome: DeltaOutcome, accepted: Any = None, error: str | None = None) -> None:
        """What the VEN answered ``apply_shadow_config(outcome.change)`` (or why it did not)."""
        refused = dict(outcome.refused)
        if outcome.change:
            if error is not None:
                refused.update({k: f"VEN agent unreachable: {error}"[:200] for k in outcome.change})
            else:
                taken, reasons = _ven_answer(accepted)
                self.desired_echo.update({k: v for k, v in taken.items() if k in outcome.change})
                # The VEN's own reason where it gave one (a partial take, e.g. unknown circuits, keeps its reason).
                refused.update({k: str(reasons.get(k, "refused by the VEN"))[:200] for k in outcome.change
                                if k not in taken or k in reasons})
        if refused:
            _log.warning("shadow delta keys refused: %s", refused)
        self.desired_refused = refused

    def rejected(self, doc: Mapping[str, Any]) -> bool:
        """An ``update/rejected``; True when the shadow should be read (``get``) to resync the version."""
        _log.warning("shadow update rejected: %s", doc)
        return self.sync.on_rejected(doc)

    def get_accepted(self, doc: Mapping[str, Any]) -> int | None:
        """A ``get/accepted``: the version to push again with, if a resync was pending."""
        return self.sync.on_get_accepted(doc)
