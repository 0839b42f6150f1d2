"""The bridge's status (``get_status``, ``ven/bridge/status`` and the shadow's ``bridge`` counters).

One place that names every field; the parts it reads are passed in, so it needs no agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from backendbridge.bridge import CommandPipeline
from backendbridge.config import BridgeConfig
from backendbridge.outbox import DEAD_LETTER, DROPPED, Outbox
from backendbridge.registration import RegistrationResult

# The part of the status that goes into the shadow.
SHADOW_COUNTERS = ("connected", "queue_depth", "dropped", "dead_letter", "sent", "acked", "reconnects")


@dataclass
class BridgeCounters:
    """What the bridge counts over its whole life (a reconfigure keeps them)."""

    bus_skipped: int = 0
    bus_unqueueable: int = 0
    commands_dropped: int = 0
    commands_unacked: int = 0
    redeliveries: int = 0
    caught_up: int = 0
    journal_resets: int = 0
    cert_errors: list[str] = field(default_factory=list)
    registration: RegistrationResult | None = None


class LinkView(Protocol):
    @property
    def connected(self) -> bool: ...
    @property
    def subscribed(self) -> bool: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def last_connect(self) -> float | None: ...
    @property
    def last_disconnect(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def connect_failures(self) -> int: ...


class DrainView(Protocol):
    @property
    def inflight(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def acked(self) -> int: ...


def _link_part(cfg: BridgeConfig | None, link: LinkView | None) -> dict[str, Any]:
    return {
        # Connected means reachable both ways: a link whose subscriptions were refused cannot get commands.
        "connected": bool(link and link.connected and link.subscribed),
        "subscribed": bool(link and link.subscribed),
        "endpoint": f"{cfg.endpoint}:{cfg.port}" if cfg else None,
        "thing": cfg.thing_name if cfg else None,
        "last_connect": link.last_connect if link else None,
        "last_disconnect": link.last_disconnect if link else None,
        "last_error": link.last_error if link else None,
    }


def _queue_part(outbox: Outbox | None, drainer: DrainView | None) -> dict[str, Any]:
    counters = outbox.counters() if outbox else {}
    return {
        "queue_depth": outbox.depth() if outbox else 0,
        "oldest_queued_age_sec": outbox.oldest_age() if outbox else None,
        "inflight": drainer.inflight if drainer else 0,
        "sent": drainer.sent if drainer else 0,
        "acked": drainer.acked if drainer else 0,
        "dropped": counters.get(DROPPED, 0),
        "superseded": counters.get("superseded", 0),
        "dead_letter": counters.get(DEAD_LETTER, 0),
    }


def _command_part(pipe: CommandPipeline | None, counters: BridgeCounters) -> dict[str, Any]:
    return {
        "rejected": pipe.rejected if pipe else 0,
        "rejected_by_reason": dict(pipe.checker.rejected) if pipe else {},
        "redeliveries": counters.redeliveries,
        "forwarded_commands": pipe.forwarded if pipe else 0,
        "not_ready": pipe.not_ready if pipe else 0,
        "internal_errors": pipe.internal if pipe else 0,
        "commands_dropped": counters.commands_dropped,
        "commands_unacked": counters.commands_unacked,
    }


_ORDER = (
    "connected", "endpoint", "thing", "last_connect", "last_disconnect", "last_error", "cert_errors",
    "queue_depth", "oldest_queued_age_sec", "inflight", "sent", "acked", "dropped", "superseded", "rejected",
    "rejected_by_reason", "redeliveries", "forwarded_commands", "not_ready", "internal_errors", "commands_dropped",
    "commands_unacked", "unqueueable", "dead_letter", "reconnects", "connect_failures", "bus_skipped", "caught_up",
    "journal_resets", "registration",
)


def bridge_status(
    counters: BridgeCounters,
    cfg: BridgeConfig | None = None,
    outbox: Outbox | None = None,
    drainer: DrainView | None = None,
    link: LinkView | None = None,
    pipe: CommandPipeline | None = None,
) -> dict[str, Any]:
    """The status document; the parts are None while the bridge has no (valid) configuration."""
    parts: dict[str, Any] = {
        **_link_part(cfg, link),
        "cert_errors": list(counters.cert_errors),
        **_queue_part(outbox, drainer),
        **_command_part(pipe, counters),
        "unqueueable": counters.bus_unqueueable,
        "reconnects": link.reconnects if link else 0,
        "connect_failures": link.connect_failures if link else 0,
        "bus_skipped": counters.bus_skipped,
        "caught_up": counters.caught_up,
        "journal_resets": counters.journal_resets,
        "registration": counters.registration.detail if counters.registration else None,
    }
    return {key: parts[key] for key in _ORDER}  # the field order of the documented status


def shadow_counters(status: dict[str, Any]) -> dict[str, Any]:
    return {key: status[key] for key in SHADOW_COUNTERS}
