"""A campus of many circuits on many Modbus unit ids behind one gateway: its wiring, generated.

    python -m building_device.campus --circuits 500 --devices 20 --out DIR [--panel-port 5020]

Writes, into DIR, what a campus needs on both sides of the wire:

* ``uNN.csv``: the driver registry of unit id NN (the device reads the same file: one wiring
  diagram, two readers). Circuit ``k`` has relay coil ``k`` and a float32 kW input register at
  ``2k``; unit 1 also carries the campus main meter, which sees every unit's circuits.
* ``uNN.config``: the driver's device config for ``devices/campus/building/uNN``.
* ``ven-agent.json``: the VEN's config with every circuit.
* ``device-args.txt``: the ``--registry FILE:UNIT`` arguments of ``python -m building_device``.
* ``driver-configs.tsv``: what to store in ``platform.driver``'s config store, in order (config name,
  file, ``csv`` or ``json``); ``VEN_WIRING=DIR ./install_agents.sh`` stores it and the VEN's config.

The circuits are deterministic (a seed is not needed): kinds cycle through a realistic mix, their
ratings and shed priorities follow from the kind, and every tenth circuit is critical lighting,
so a shed has to skip circuits the way a real building makes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

DEVICE_PREFIX = "campus/building/u"
METER_POINT = "Campus_kw"
REGISTRY_HEADER = ["Volttron Point Name", "Units", "Writable", "Point Address", "Modbus Register", "Table",
                   "Default Value", "Role", "Circuit", "Rated kW", "Notes"]
# kind, rated kW, priority (lower sheds first)
_KINDS = (("AHU", 5.5, 3), ("Heater", 2.5, 2), ("EV", 7.2, 1), ("WaterHeater", 1.2, 1), ("Pump", 3.0, 4),
          ("Chiller", 6.5, 5), ("Plug", 0.9, 6), ("Fan", 1.8, 4), ("Kitchen", 4.0, 7))


@dataclass(frozen=True)
class CampusCircuit:
    name: str
    unit: int
    index: int
    """Position on its unit: coil ``index``, kW register ``2 * index``."""
    rated_kw: float
    priority: int
    critical: bool

    @property
    def point_stem(self) -> str:
        return self.name.replace("-", "_")

    @property
    def device(self) -> str:
        return device_topic(self.unit)


def device_topic(unit: int) -> str:
    return f"{DEVICE_PREFIX}{unit:02d}"


def circuits(total: int, devices: int) -> list[CampusCircuit]:
    """``total`` circuits spread as evenly as possible over units 1..``devices``."""
    if total < 1 or devices < 1 or devices > total or devices > 247:
        raise ValueError(f"need 1 <= devices <= circuits and devices <= 247 (Modbus unit ids), got "
                         f"{total} circuits on {devices} devices")
    out: list[CampusCircuit] = []
    per, extra = divmod(total, devices)
    n = 0
    for unit in range(1, devices + 1):
        for index in range(per + (1 if unit <= extra else 0)):
            if n % 10 == 9:
                kind, rated, priority, critical = "Lighting", 0.8, 9, True
            else:
                kind, rated, priority = _KINDS[n % len(_KINDS)]
                critical = False
                # Spread the ratings a little so no two circuits of a kind are the same load.
                rated = round(rated * (0.8 + 0.4 * ((n * 37) % 11) / 10), 2)
            out.append(CampusCircuit(f"U{unit:02d}-{kind}-{index + 1:02d}", unit, index, rated, priority, critical))
            n += 1
    return out


def registry_rows(unit: int, members: list[CampusCircuit], with_meter: bool) -> list[list[str]]:
    rows = [[f"{c.point_stem}_enabled", "On/Off", "TRUE", str(c.index), "bool", "coil", "TRUE", "enable", c.name, "",
             "relay"] for c in members]
    rows += [[f"{c.point_stem}_kw", "kW", "FALSE", str(2 * c.index), ">f", "input", "", "power", c.name,
              f"{c.rated_kw}", "circuit power"] for c in members]
    if with_meter:
        rows.append([METER_POINT, "kW", "FALSE", str(2 * len(members)), ">f", "input", "", "meter", "", "",
                     "campus main meter (every unit's circuits)"])
    return rows


def device_config(unit: int, panel_port: int, csv_name: str) -> dict[str, object]:
    return {
        "driver_config": {"device_address": "127.0.0.1", "port": panel_port, "unit_id": unit,
                          "transport_protocol": "tcp", "timeout": 1.0, "retries": 0, "reply_timeout": 3.0},
        "driver_type": "modbus",
        "registry_config": f"config://{csv_name}",
        "interval": 1,
        "timezone": "UTC",
        "publish_depth_first_all": True,
        "all_publish_interval": 1,
        "publish_depth_first_multi": False,
    }


def ven_config(members: list[CampusCircuit], base: dict[str, object]) -> dict[str, object]:
    """``base`` (the project's ``config/ven-agent.json``) with the campus's circuits and meter."""
    cfg = dict(base)
    cfg["circuits"] = [{"name": c.name, "device": c.device, "enable_point": f"{c.point_stem}_enabled",
                        "power_point": f"{c.point_stem}_kw", "rated_kw": c.rated_kw, "priority": c.priority,
                        "critical": c.critical, "min_off_sec": 0, "min_on_sec": 0} for c in members]
    cfg["meter"] = {"device": device_topic(1), "point": METER_POINT}
    cfg["overrides"] = {}
    return cfg


def write(out: Path, total: int, devices: int, panel_port: int, base: dict[str, object]) -> list[CampusCircuit]:
    members = circuits(total, devices)
    out.mkdir(parents=True, exist_ok=True)
    args = []
    manifest: list[str] = []
    for unit in range(1, devices + 1):
        on_unit = [c for c in members if c.unit == unit]
        csv_name = f"u{unit:02d}.csv"
        with open(out / csv_name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(REGISTRY_HEADER)
            w.writerows(registry_rows(unit, on_unit, with_meter=unit == 1))
        (out / f"u{unit:02d}.config").write_text(json.dumps(device_config(unit, panel_port, csv_name), indent=2) + "\n")
        args += ["--registry", f"{out / csv_name}:{unit}"]
        manifest.insert(unit - 1, f"{csv_name}\t{csv_name}\tcsv")   # every registry before any device config
        manifest.append(f"devices/{device_topic(unit)}\tu{unit:02d}.config\tjson")
    (out / "ven-agent.json").write_text(json.dumps(ven_config(members, base), indent=2) + "\n")
    (out / "device-args.txt").write_text(" ".join(args) + "\n")
    (out / "driver-configs.tsv").write_text("".join(line + "\n" for line in manifest))
    return members


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m building_device.campus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--circuits", type=int, required=True)
    p.add_argument("--devices", type=int, required=True, help="Modbus unit ids (1..247)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--panel-port", type=int, default=5020)
    p.add_argument("--base-config", type=Path, default=Path(__file__).resolve().parents[2] / "config/ven-agent.json",
                   help="the VEN config whose settings the campus keeps (default: config/ven-agent.json)")
    a = p.parse_args(argv)
    try:
        base = json.loads(a.base_config.read_text())
        members = write(a.out, a.circuits, a.devices, a.panel_port, base)
    except (OSError, ValueError) as exc:
        print(f"building_device.campus: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(members)} circuits on {a.devices} unit id(s) in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
