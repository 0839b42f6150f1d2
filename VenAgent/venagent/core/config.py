"""Typed VEN configuration, parsed from the VOLTTRON config store's JSON.

Models are frozen and reject unknown keys so a typo in the config store fails loudly instead of
silently running with a default. :meth:`VenConfig.from_dict` reports every problem at once in a
single :class:`ConfigError`, because fixing a config one error per restart is miserable.

Defaults follow the seed; ``meter`` defaults to ``None`` (total power = sum of circuits) and
``overrides`` to ``{}``, since those two cannot have a universally valid default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ven_common.contract import DEFAULT_DRIVER_TIMEOUT_SEC

from venagent.core.errors import ConfigError

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class CircuitConfig(BaseModel):
    """One controllable circuit (a driver point pair: an enable switch and a power reading)."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=128)
    device: str = Field(min_length=1)
    enable_point: str = Field(min_length=1)
    power_point: str = Field(min_length=1)
    rated_kw: float = Field(gt=0)
    # Shed in ascending priority: 0/1 go first; a higher number is more important.
    priority: int = Field(ge=0)
    critical: bool = False
    min_off_sec: float = Field(default=0.0, ge=0)
    min_on_sec: float = Field(default=0.0, ge=0)


class MeterConfig(BaseModel):
    """The whole-building meter point; when absent the total is the sum of the circuits."""

    model_config = _MODEL_CONFIG

    device: str = Field(min_length=1)
    point: str = Field(min_length=1)


class VenConfig(BaseModel):
    """The whole VEN configuration."""

    model_config = _MODEL_CONFIG

    thing_name: str = Field(default="volttron_thing", min_length=1, max_length=128)
    metering_interval_sec: float = Field(default=1.0, gt=0)
    baseline_samples: int = Field(default=60, ge=1)
    mv_baseline_window_sec: float = Field(default=300.0, gt=0)
    max_event_duration_sec: float = Field(default=86400.0, gt=0)
    max_shed_kw: float = Field(default=1000.0, gt=0)
    max_schedule_ahead_sec: float = Field(default=604800.0, ge=0)
    restore_spacing_sec: float = Field(default=2.0, ge=0)
    restore_jitter_sec: float = Field(default=1.0, ge=0)
    hold_confirm_sec: float = Field(default=5.0, ge=0)
    # A reading older than this (a few driver polls) is stale: shown as such, never acted on.
    stale_after_sec: float = Field(default=5.0, gt=0)
    # The longest the VEN waits for the driver to confirm a write before it answers a command
    # (devices are written in parallel); the bridge's rpc_timeout_sec must be longer.
    driver_timeout_sec: float = Field(default=DEFAULT_DRIVER_TIMEOUT_SEC, gt=0, le=30)
    ack_cache_size: int = Field(default=10000, ge=1)
    circuits: tuple[CircuitConfig, ...] = Field(min_length=1)
    meter: MeterConfig | None = None
    overrides: Mapping[str, bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VenConfig:
        problems = _cross_field_problems(
            [c.name for c in self.circuits], list(self.overrides)
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VenConfig:
        """Validate ``data``; raise one :class:`ConfigError` listing every problem."""
        if not isinstance(data, Mapping):
            raise ConfigError([f"config must be a JSON object, got {type(data).__name__}"])
        try:
            return cls.model_validate(_json_friendly(data))
        except ValidationError as exc:
            errors = exc.errors()
            cross_ran = any(err["type"] == "value_error" and not err["loc"] for err in errors)
            problems = [
                problem
                for err in errors
                if not _is_echo(err, errors)
                for problem in _describe(err).split("; ")
            ]
            # Pydantic skips the "after" validator when a field failed; run the cross-field rules
            # on the raw data so those problems are reported in the same round.
            if not cross_ran:
                problems.extend(_raw_cross_field_problems(data))
            raise ConfigError(problems) from None

    def circuit(self, name: str) -> CircuitConfig | None:
        return self.circuits_by_name.get(name)

    @cached_property
    def circuits_by_name(self) -> dict[str, CircuitConfig]:
        # Built once per (frozen) config: the shells look a circuit up for every point of every
        # driver publish, and rebuilding it per lookup cost O(circuits) each time.
        return {c.name: c for c in self.circuits}

    @cached_property
    def circuits_by_device(self) -> dict[str, list[str]]:
        """Circuit names per driver device, in configuration order: the one grouping the shell and the
        poll round use."""
        grouped: dict[str, list[str]] = {}
        for circuit in self.circuits:
            grouped.setdefault(circuit.device, []).append(circuit.name)
        return grouped


def apply_desired_settings(config: VenConfig, change: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config-store document with the permitted desired-shadow settings applied, and the
    accepted subset (``metering_interval_sec``; ``circuit_priorities`` of known circuits).

    Raises :class:`ConfigError` when the result would not be a valid configuration.
    """
    data = config.model_dump(mode="json")
    accepted: dict[str, Any] = {}
    if "metering_interval_sec" in change:
        data["metering_interval_sec"] = accepted["metering_interval_sec"] = change["metering_interval_sec"]
    priorities = change.get("circuit_priorities")
    if isinstance(priorities, Mapping):
        taken = {name: value for name, value in priorities.items() if config.circuit(name) is not None}
        for circuit in data["circuits"]:
            if circuit["name"] in taken:
                circuit["priority"] = taken[circuit["name"]]
        if taken:
            accepted["circuit_priorities"] = taken
    if accepted:
        VenConfig.from_dict(data)
    return data, accepted


def desired_outcome(config: VenConfig, change: Mapping[str, Any]
                    ) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, str]]:
    """:func:`apply_desired_settings` with the VEN's reason for each setting it does not take, so the reason can
    reach the shadow (``desired_refused``) and the backend: (the new document or None, accepted, refused)."""
    try:
        data, accepted = apply_desired_settings(config, change)
    except ValueError as exc:  # ConfigError: the result would not be a valid configuration
        return None, {}, {str(key)[:64]: f"the VEN's configuration refuses it: {exc}"[:200] for key in change}
    refused = {str(key)[:64]: "not a setting the VEN takes from the shadow" for key in change
               if key not in ("metering_interval_sec", "circuit_priorities")}
    priorities = change.get("circuit_priorities")
    if isinstance(priorities, Mapping):
        unknown = sorted(str(name) for name in priorities if config.circuit(str(name)) is None)
        if unknown:
            refused["circuit_priorities"] = (f"unknown circuit(s): {', '.join(unknown)}"
                                             + (" (the others were applied)" if "circuit_priorities" in accepted else ""))[:200]
    elif "circuit_priorities" in change:
        refused["circuit_priorities"] = "must be an object {circuit name: priority}"
    return data, accepted, refused


def _json_friendly(data: Mapping[str, Any]) -> dict[str, Any]:
    """Strict mode refuses ints for float fields only when they are bools; JSON lists → tuples."""
    out = dict(data)
    if isinstance(out.get("circuits"), list):
        out["circuits"] = tuple(out["circuits"])
    return out


def _cross_field_problems(names: list[str], override_names: list[str]) -> list[str]:
    problems = []
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        problems.append(f"circuits: names must be unique, duplicated: {', '.join(dupes)}")
    unknown = sorted(set(override_names) - set(names))
    if unknown:
        problems.append(f"overrides: unknown circuit(s): {', '.join(unknown)}")
    return problems


def _raw_cross_field_problems(data: Mapping[str, Any]) -> list[str]:
    circuits = data.get("circuits")
    names = [
        c["name"]
        for c in (circuits if isinstance(circuits, list | tuple) else [])
        if isinstance(c, Mapping) and isinstance(c.get("name"), str)
    ]
    overrides = data.get("overrides")
    override_names = [k for k in overrides if isinstance(k, str)] if isinstance(overrides, Mapping) else []
    return _cross_field_problems(names, override_names)


def _is_echo(err: Any, errors: list[Any]) -> bool:
    """A "too short" on a list whose items themselves failed only repeats those failures."""
    loc = tuple(err["loc"])
    return err["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _describe(err: Any) -> str:
    if err["type"] == "value_error" and not err["loc"]:
        # Our own cross-field message, already phrased "field: problem; field: problem".
        return str(err["ctx"]["error"])
    loc = ".".join(str(part) for part in err["loc"]) or "config"
    shown = repr(err.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{loc}: {err['msg']} (got {shown})".replace("; ", ", ")


def effective_overrides(config: VenConfig, persisted: Mapping[str, bool | None]) -> dict[str, bool]:
    """Config overrides, then runtime changes on top (a persisted None = cleared at runtime)."""
    overrides = dict(config.overrides)
    for name, state in persisted.items():
        if name not in config.circuits_by_name:
            continue
        if state is None:
            overrides.pop(name, None)
        else:
            overrides[name] = state
    return overrides
