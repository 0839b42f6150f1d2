"""A simulated building for the VOLTTRON platform driver.

Each circuit is two points: a writable ``enable`` point and a read-only ``power`` point that
follows it (rated kW x load profile x small noise; 0 when disabled). One ``meter`` point sums
every circuit, as a whole-building meter would. The driver loads it like any other interface
(``driver_type: "simbuilding"``), so agents see exactly what a BACnet or Modbus device gives.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any, cast

from pydantic import Field
from volttron.driver.base.config import PointConfig, RemoteConfig
from volttron.driver.base.interfaces import BaseInterface, BaseRegister, BasicRevert

from ven_common.load_model import circuit_kw

_log = logging.getLogger(__name__)

ROLES = ("enable", "power", "meter")
_TRUE_WORDS = {"1", "true", "on", "yes", "enabled"}
_FALSE_WORDS = {"0", "false", "off", "no", "disabled", ""}


def parse_bool(value: Any) -> bool:
    """Strict boolean parsing: the fake driver's bool("FALSE") is True, which is the bug we avoid."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true/false, on/off or 1/0)")


class SimBuildingRemoteConfig(RemoteConfig):
    remote_id: str | None = None
    noise_pct: float = 1.0
    profile: str = "flat"
    seed: int = 0


class SimBuildingPointConfig(PointConfig):
    role: str = Field(default="", alias="Role")
    circuit: str = Field(default="", alias="Circuit")
    rated_kw: float | str = Field(default=0.0, alias="Rated kW")
    starting_value: str | bool | int | float = Field(default="", alias="Starting Value")


class EnableRegister(BaseRegister):
    def __init__(self, point_name: str, units: str, initial: bool, read_only: bool) -> None:
        super().__init__("bit", read_only, point_name, units, description="circuit enable")
        self.python_type = bool  # type: ignore[assignment]  # the base infers type[int] from its default
        self.value = initial


class PowerRegister(BaseRegister):
    def __init__(self, point_name: str, rated_kw: float, building: SimBuilding) -> None:
        super().__init__("byte", True, point_name, "kW", description="circuit power")
        self.python_type = float  # type: ignore[assignment]  # the base infers type[int] from its default
        self.rated_kw = rated_kw
        self.enable: EnableRegister | None = None
        self._building = building

    @property
    def value(self) -> float:
        if self.enable is None or not self.enable.value:
            return 0.0
        return self._building.draw(self.point_name, self.rated_kw)


class MeterRegister(BaseRegister):
    def __init__(self, point_name: str, building: SimBuilding) -> None:
        super().__init__("byte", True, point_name, "kW", description="whole-building meter")
        self.python_type = float  # type: ignore[assignment]  # the base infers type[int] from its default
        self._building = building

    @property
    def value(self) -> float:
        return round(sum(r.value for r in self._building.power_registers), 4)


# The driver's two bases disagree on set_point/revert_*; every driver interface is built this way.
class SimBuilding(BasicRevert, BaseInterface):  # type: ignore[misc]
    REGISTER_CONFIG_CLASS = SimBuildingPointConfig
    INTERFACE_CONFIG_CLASS = SimBuildingRemoteConfig

    def __init__(self, config: SimBuildingRemoteConfig, *args: Any, **kwargs: Any) -> None:
        BasicRevert.__init__(self, **kwargs)
        self.default_config = {}  # BaseInterface.__init__ merges the device config into it
        BaseInterface.__init__(self, config, *args, **kwargs)
        self.power_registers: list[PowerRegister] = []
        self._enables: dict[str, EnableRegister] = {}
        self._powers: dict[str, PowerRegister] = {}

    # The load model is shared with the Modbus panel device (ven_common.load_model).
    def draw(self, point_name: str, rated_kw: float) -> float:
        config = cast(SimBuildingRemoteConfig, self.config)  # built from INTERFACE_CONFIG_CLASS
        return circuit_kw(point_name, rated_kw, time.time(), profile=config.profile,
                          noise_pct=config.noise_pct, seed=config.seed)

    def create_register(self, point: PointConfig) -> BaseRegister:
        register_definition = cast(SimBuildingPointConfig, point)  # parsed with REGISTER_CONFIG_CLASS
        role = register_definition.role.strip().lower()
        name = register_definition.volttron_point_name
        if role not in ROLES:
            raise ValueError(f"point {name}: Role must be one of {ROLES}, got {register_definition.role!r}")
        if role == "enable":
            if not register_definition.circuit:
                raise ValueError(f"point {name}: an enable point needs a Circuit")
            enable = EnableRegister(name, register_definition.units or "On/Off",
                                    parse_bool(register_definition.starting_value),
                                    read_only=register_definition.writable is not True)
            self._enables[register_definition.circuit] = enable
            self.set_default(name, enable.value)
            register: BaseRegister = enable
        elif role == "power":
            if not register_definition.circuit:
                raise ValueError(f"point {name}: a power point needs a Circuit")
            rated = float(register_definition.rated_kw)
            if not math.isfinite(rated) or rated < 0:
                raise ValueError(f"point {name}: Rated kW must be a finite number >= 0, got {rated}")
            power = PowerRegister(name, rated, self)
            self._powers[register_definition.circuit] = power
            self.power_registers.append(power)
            register = power
        else:
            register = MeterRegister(name, self)
        self._link()
        return register

    def _link(self) -> None:
        for circuit, power in self._powers.items():
            power.enable = self._enables.get(circuit)

    def get_point(self, topic: str, **kwargs: Any) -> Any:
        register: Any = self.get_register_by_name(topic)  # one of the three above: each has a value
        return register.value

    def _get_multiple_points(self, topics: Iterable[str], **kwargs: Any) -> tuple[dict, dict]:
        return BaseInterface.get_multiple_points(self, topics, **kwargs)

    def _set_point(self, topic: str, value: Any) -> Any:
        register = self.get_register_by_name(topic)
        if register.read_only or not isinstance(register, EnableRegister):
            raise RuntimeError(f"Trying to write to a point configured read only: {topic}")
        register.value = parse_bool(value)
        return register.value

    @classmethod
    def unique_remote_id(cls, config_name: str, config: RemoteConfig) -> tuple:
        remote_id = getattr(config, "remote_id", None)
        return (config_name,) if remote_id is None else (remote_id,)
