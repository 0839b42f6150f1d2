"""Errors shared by both agents.

:class:`ConfigError` is the one "invalid configuration" of the project: it lists every problem
found (fixing a config one error per restart is miserable). The VEN's core derives its own from
it and from :class:`venagent.core.errors.VenCoreError`; the bridge raises it as is.
"""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """An invalid configuration; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Iterable[str], message: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(message if message is not None else "invalid configuration: " + "; ".join(self.problems))
