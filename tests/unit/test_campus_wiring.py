"""The generated campus (building_device.campus): both readers of its wiring agree, and its meter
sees every unit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT / "building_device") not in sys.path:
    sys.path.insert(0, str(_ROOT / "building_device"))

from building_device import campus  # noqa: E402
from building_device.__main__ import units  # noqa: E402
from building_device.panel import Panel, PanelLayout  # noqa: E402
from venagent.core import VenConfig  # noqa: E402

BASE = json.loads((_ROOT / "config/ven-agent.json").read_text())


def test_circuits_spread_evenly_with_critical_lighting() -> None:
    members = campus.circuits(500, 20)
    assert len(members) == 500
    assert len({c.name for c in members}) == 500
    per_unit = {u: sum(1 for c in members if c.unit == u) for u in range(1, 21)}
    assert set(per_unit.values()) == {25}
    assert sum(c.critical for c in members) == 50
    assert all(c.priority == 9 for c in members if c.critical)
    uneven = campus.circuits(7, 3)
    assert [sum(1 for c in uneven if c.unit == u) for u in (1, 2, 3)] == [3, 2, 2]


@pytest.mark.parametrize(("total", "devices"), [(0, 1), (5, 0), (3, 4), (300, 248)])
def test_impossible_campus_is_refused(total: int, devices: int) -> None:
    with pytest.raises(ValueError, match="devices"):
        campus.circuits(total, devices)


def test_written_wiring_is_one_diagram_for_driver_device_and_ven(tmp_path: Path) -> None:
    members = campus.write(tmp_path, 50, 2, 5999, BASE)
    cfg = VenConfig.from_dict(json.loads((tmp_path / "ven-agent.json").read_text()))
    assert len(cfg.circuits) == 50
    assert cfg.meter is not None and cfg.meter.device == "campus/building/u01"
    for unit in (1, 2):
        layout = PanelLayout.from_registry(tmp_path / f"u{unit:02d}.csv")
        device = json.loads((tmp_path / f"u{unit:02d}.config").read_text())
        assert device["driver_config"]["unit_id"] == unit and device["driver_config"]["port"] == 5999
        assert device["registry_config"] == f"config://u{unit:02d}.csv"
        relay_points = {r.point for r in layout.relays}
        power_points = {p.point for p in layout.powers}
        for c in (c for c in cfg.circuits if c.device == f"campus/building/u{unit:02d}"):
            assert c.enable_point in relay_points and c.power_point in power_points
        assert (campus.METER_POINT in power_points) == (unit == 1)
    rated = {c.name: c.rated_kw for c in members}
    assert all(rated[c.name] == c.rated_kw for c in cfg.circuits)
    args = (tmp_path / "device-args.txt").read_text().split()
    assert args == ["--registry", f"{tmp_path}/u01.csv:1", "--registry", f"{tmp_path}/u02.csv:2"]
    # What install_agents.sh stores (VEN_WIRING): every registry before the device configs naming them.
    manifest = [line.split("\t") for line in (tmp_path / "driver-configs.tsv").read_text().splitlines()]
    assert manifest == [["u01.csv", "u01.csv", "csv"], ["u02.csv", "u02.csv", "csv"],
                        ["devices/campus/building/u01", "u01.config", "json"],
                        ["devices/campus/building/u02", "u02.config", "json"]]


def test_campus_meter_sees_every_unit(tmp_path: Path) -> None:
    campus.write(tmp_path, 6, 2, 5999, BASE)
    panels = [Panel(PanelLayout.from_registry(tmp_path / f"u{u:02d}.csv"), noise_pct=0.0) for u in (1, 2)]
    for p in panels:
        p.metered = panels
    meter = next(p for p in panels[0].layout.powers if p.circuit is None)
    total = sum(p.rated_kw for panel in panels for p in panel.layout.powers if p.circuit is not None)
    assert panels[0].kw(meter, 0.0) == pytest.approx(total, rel=1e-3)
    panels[1].set_coils(0, [False])
    first_of_unit2 = next(p for p in panels[1].layout.powers if p.circuit is not None)
    assert panels[0].kw(meter, 0.0) == pytest.approx(total - first_of_unit2.rated_kw, rel=1e-3)


def test_gateway_arguments() -> None:
    assert units(["panel.csv"], 0) == [("panel.csv", 0)]
    assert units(["a.csv:1", "b.csv:2"], 0) == [("a.csv", 1), ("b.csv", 2)]
    with pytest.raises(ValueError, match="distinct unit ids"):
        units(["a.csv:1", "b.csv:1"], 0)
    with pytest.raises(ValueError, match="FILE:UNIT"):
        units(["a.csv", "b.csv"], 0)
