"""The one exception family of the core.

Everything derives from ``ValueError`` so a shell that only knows "bad input" can still catch it,
while tests and callers that care can tell the kinds apart.
"""

from __future__ import annotations

from collections.abc import Iterable


class VenCoreError(ValueError):
    """Base of every error the core raises on purpose."""


class ConfigError(VenCoreError):
    """The configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid VEN configuration: " + "; ".join(self.problems))


class UnknownCircuitError(VenCoreError):
    """A circuit name that the current configuration does not define."""


class IllegalTransitionError(VenCoreError):
    """An event lifecycle transition that the declared table does not allow (or whose guard fails)."""


class StoreError(VenCoreError):
    """The persisted state cannot be read back (corrupt row, newer schema)."""
