"""The demand-response core of the VEN: no VOLTTRON, no I/O except the SQLite store.

Time is always passed in (``now``, epoch seconds) so every rule can be tested without clocks.
The shell talks to :class:`~venagent.core.engine.VenEngine` only.
"""

from __future__ import annotations

from venagent.core.circuits import CircuitSample
from venagent.core.config import CircuitConfig, MeterConfig, VenConfig
from venagent.core.effects import Effects
from venagent.core.engine import VenEngine
from venagent.core.errors import (
    CommandConflict,
    CommandRejected,
    ConfigError,
    IllegalTransitionError,
    UnknownCircuitError,
    VenCoreError,
)
from venagent.core.store import VenStore

__all__ = [
    "CircuitConfig",
    "CircuitSample",
    "CommandConflict",
    "CommandRejected",
    "ConfigError",
    "Effects",
    "IllegalTransitionError",
    "MeterConfig",
    "UnknownCircuitError",
    "VenConfig",
    "VenCoreError",
    "VenEngine",
    "VenStore",
]
