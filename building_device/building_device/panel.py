"""The panel's model: relays, the power each circuit draws, and the whole-building meter.

Plain Python (no Modbus): the server maps it onto coils and registers. Relays are the panel's own
state, in its own process: a crash of the VEN's box leaves them where they were, as a real
relay panel does. With a state file the relays also survive the device's own restart (latching
relays); without one, a restart comes back with the power-on defaults (a panel that lost power).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ven_common.load_model import circuit_kw

_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no", ""}


def _bool(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{where}: not a boolean: {text!r} (use TRUE/FALSE)")


@dataclass(frozen=True)
class Relay:
    point: str
    circuit: str
    coil: int
    power_on: bool


@dataclass(frozen=True)
class PowerPoint:
    point: str
    circuit: str | None
    """None for the whole-building meter."""
    register: int
    rated_kw: float


@dataclass(frozen=True)
class PanelLayout:
    relays: tuple[Relay, ...]
    powers: tuple[PowerPoint, ...]
    table: str
    """The register table the kW values live in (``input`` or ``holding``)."""

    @classmethod
    def from_registry(cls, path: str | os.PathLike[str]) -> PanelLayout:
        """The driver's registry CSV is the device's wiring diagram: one file, two readers."""
        relays: list[Relay] = []
        powers: list[PowerPoint] = []
        tables: set[str] = set()
        with open(path, newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                where = f"{path} line {n}"
                role = (row.get("Role") or "").strip().lower()
                point = (row.get("Volttron Point Name") or "").strip()
                address = int((row.get("Point Address") or "").strip())
                table = (row.get("Table") or "").strip().lower()
                if role == "enable":
                    if table != "coil":
                        raise ValueError(f"{where}: an enable point must be a coil, got table {table!r}")
                    relays.append(Relay(point, row["Circuit"].strip(), address,
                                        _bool(row.get("Default Value") or "", where)))
                elif role in ("power", "meter"):
                    tables.add(table)
                    rated = float(row.get("Rated kW") or 0.0) if role == "power" else 0.0
                    powers.append(PowerPoint(point, row["Circuit"].strip() if role == "power" else None, address, rated))
                else:
                    raise ValueError(f"{where}: Role must be enable, power or meter, got {role!r}")
        if len(tables) > 1:
            raise ValueError(f"{path}: all kW points must be in one register table, got {sorted(tables)}")
        return cls(tuple(relays), tuple(powers), tables.pop() if tables else "input")


class Panel:
    def __init__(self, layout: PanelLayout, *, state_file: Path | None = None, noise_pct: float = 1.0,
                 profile: str = "flat", seed: int = 0) -> None:
        self.layout = layout
        self.state_file = state_file
        self.noise_pct, self.profile, self.seed = noise_pct, profile, seed
        self.relays: dict[int, bool] = {r.coil: r.power_on for r in layout.relays}
        # The panels a meter point of this one sees: itself, or every unit behind a campus gateway.
        self.metered: list[Panel] = [self]
        self._by_circuit = {r.circuit: r.coil for r in layout.relays}
        if state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text())
            self.relays.update({int(coil): bool(on) for coil, on in saved.items() if int(coil) in self.relays})

    def set_coils(self, address: int, values: list[bool]) -> None:
        changed = False
        for offset, value in enumerate(values):
            coil = address + offset
            if coil in self.relays and self.relays[coil] != bool(value):
                self.relays[coil] = bool(value)
                changed = True
        if changed and self.state_file is not None:
            self._save()

    def _save(self) -> None:
        assert self.state_file is not None
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".relays-")
        with os.fdopen(fd, "w") as fh:
            json.dump({str(k): v for k, v in sorted(self.relays.items())}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_file)

    def kw(self, point: PowerPoint, now: float) -> float:
        if point.circuit is None:
            return round(sum(panel.kw(p, now) for panel in self.metered for p in panel.layout.powers
                             if p.circuit is not None), 4)
        if not self.relays.get(self._by_circuit.get(point.circuit, -1), False):
            return 0.0
        return circuit_kw(point.point, point.rated_kw, now, profile=self.profile, noise_pct=self.noise_pct,
                          seed=self.seed)
