"""The campus gateway: one device process answering a panel per Modbus unit id, read and written
with our own Modbus client (no platform needed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from building_device import campus
from tests.support.broker import free_port
from tests.support.device import PanelDevice
from tests.support.system import REPO


def _float(words: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


def test_gateway_answers_each_unit_and_its_meter_sees_all(tmp_path: Path) -> None:
    port = free_port()
    members = campus.write(tmp_path / "wiring", 9, 3, port, json.loads((REPO / "config/ven-agent.json").read_text()))
    registries = [f"{tmp_path / 'wiring'}/u{u:02d}.csv:{u}" for u in (1, 2, 3)]
    with PanelDevice(tmp_path / "gw", port, registries=registries):
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert client.connect()
        try:
            for unit in (1, 2, 3):
                assert client.read_coils(0, count=3, device_id=unit).bits[:3] == [True] * 3
            meter_at = 2 * 3   # after unit 1's three circuits
            before = _float(client.read_input_registers(meter_at, count=2, device_id=1).registers)
            third = next(c for c in members if c.unit == 3 and c.index == 1)
            third_kw = _float(client.read_input_registers(2, count=2, device_id=3).registers)
            assert abs(third_kw - third.rated_kw) <= 0.05 * third.rated_kw   # 1 % noise by default
            assert client.write_coil(1, False, device_id=3).isError() is False
            assert client.read_coils(0, count=3, device_id=3).bits[:3] == [True, False, True]
            assert client.read_coils(0, count=3, device_id=2).bits[:3] == [True] * 3   # its own relays only
            assert _float(client.read_input_registers(2, count=2, device_id=3).registers) == 0.0
            after = _float(client.read_input_registers(meter_at, count=2, device_id=1).registers)
            assert before - after > 0.8 * third.rated_kw
            total = sum(c.rated_kw for c in members)
            assert abs(before - total) <= 0.05 * total
        finally:
            client.close()
