"""The one exception family of the core.

Everything derives from ``ValueError`` so a shell that only knows "bad input" can still catch it,
while tests and callers that care can tell the kinds apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from ven_common.contract import RejectReason
from ven_common.errors import ConfigError as _ProjectConfigError


class VenCoreError(ValueError):
    """Base of every error the core raises on purpose."""


class ConfigError(VenCoreError, _ProjectConfigError):
    """The VEN's configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Iterable[str]) -> None:
        listed = tuple(problems)
        _ProjectConfigError.__init__(self, listed, "invalid VEN configuration: " + "; ".join(listed))


class CommandRejected(VenCoreError):
    """A command the core refuses, with the ack's ``reason_code``; raised before anything changed.

    The engine turns it into the reject ack (:meth:`venagent.core.engine.VenEngine.begin_command`)."""

    def __init__(self, code: RejectReason, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class CommandConflict(CommandRejected):
    """Well-formed, but not acceptable in the current state (overlap, unknown or finished event)."""


class UnknownCircuitError(VenCoreError):
    """A circuit name that the current configuration does not define."""


class IllegalTransitionError(VenCoreError):
    """An event lifecycle transition that the declared table does not allow (or whose guard fails)."""


class StoreError(VenCoreError):
    """The persisted state cannot be read back (corrupt row, newer schema)."""
