"""The bridge's exception family: one base, so a caller can tell the bridge's own failures from anything else."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every exception the bridge raises on purpose."""


class VenUnreachable(BridgeError):
    """The VEN did not answer (not running, or no answer within the RPC timeout): ``not_ready``."""


class VenFailed(BridgeError):
    """The VEN answered with an error of its own: ``internal``, never ``not_ready``."""


class JournalUnavailable(BridgeError):
    """The VEN did not answer ``get_journal_since``."""


class CertificateError(BridgeError, RuntimeError):
    """The thing's certificate files cannot be used (each problem named)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))
