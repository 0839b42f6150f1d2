"""The simulated building as a Modbus TCP device in its own process (pymodbus server).

    python -m building_device --registry config/driver/panel.csv --port 5020 [--state-file relays.json]
    python -m building_device --registry u01.csv:1 --registry u02.csv:2 ... --port 5020   (a campus gateway)

Per circuit a relay coil and a float32 kW register that follows it; one float32 register for the
whole-building meter; addresses from the driver's own registry CSV. With ``--state-file`` the
relays latch across the device's own restart; without it a restart comes back with the power-on
defaults (the registry's ``Default Value``). With several ``--registry FILE:UNIT`` it is a gateway
answering one panel per Modbus unit id, and a meter point on any of them sees every unit's
circuits (the campus main meter; ``building_device.campus`` writes such a set). Faults are real ones, made from outside: SIGSTOP
hangs it (connections stay open, nothing answers), SIGKILL makes it refuse connections.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import struct
import sys
import time
from pathlib import Path

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from building_device.panel import Panel, PanelLayout

_log = logging.getLogger("building_device")

READ_COILS, READ_HOLDING, READ_INPUT = 1, 3, 4
WRITE_COIL, WRITE_COILS = 5, 15


def _float_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def build_device(panel: Panel, unit_id: int = 0) -> SimDevice:
    layout = panel.layout
    coils = max((r.coil for r in layout.relays), default=0) + 1
    registers = max((p.register for p in layout.powers), default=0) + 2
    words = {p.register: p for p in layout.powers}
    power_fc = READ_INPUT if layout.table == "input" else READ_HOLDING

    async def action(function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: list[int] | list[bool] | None) -> None:
        # Runs on every request before values are returned: the panel model is the truth.
        if function_code in (WRITE_COIL, WRITE_COILS) and set_values is not None:
            panel.set_coils(address, [bool(v) for v in set_values])
        elif function_code == power_fc:
            now = time.time()
            for register, point in words.items():
                offset = register - start_address
                if 0 <= offset < len(current_registers) - 1:
                    current_registers[offset:offset + 2] = _float_words(panel.kw(point, now))
        elif function_code == READ_COILS:
            # Coils are packed 16 to a register here; rewrite them from the relays.
            for coil, on in panel.relays.items():
                word, bit = divmod(coil, 16)
                offset = word - start_address
                if 0 <= offset < len(current_registers):
                    mask = 1 << bit
                    current_registers[offset] = (current_registers[offset] | mask) if on else (
                        current_registers[offset] & ~mask)

    initial = [panel.relays.get(i, False) for i in range(coils)]
    regs = [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)]
    none = [SimData(0, values=[False], datatype=DataType.BITS)]
    simdata = ([SimData(0, values=initial, datatype=DataType.BITS)], none,
               regs if layout.table == "holding" else [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)],
               regs if layout.table == "input" else [SimData(0, count=registers, values=0, datatype=DataType.REGISTERS)])
    return SimDevice(id=unit_id, simdata=simdata, action=action)


def units(registries: list[str], default_unit: int) -> list[tuple[str, int]]:
    """``FILE`` or ``FILE:UNIT`` arguments as (file, unit id); several need a unit id each."""
    out: list[tuple[str, int]] = []
    for arg in registries:
        path, sep, unit = arg.rpartition(":")
        if sep and unit.isdigit():
            out.append((path, int(unit)))
        else:
            out.append((arg, default_unit))
    ids = [u for _, u in out]
    if len(out) > 1 and (0 in ids or len(set(ids)) != len(ids)):
        raise ValueError("several --registry need FILE:UNIT each, with distinct unit ids 1..247")
    return out


async def serve(args: argparse.Namespace) -> None:
    wired = units(args.registry, args.unit_id)
    panels: list[tuple[Panel, int]] = []
    for path, unit in wired:
        state = Path(args.state_file) if args.state_file else None
        if state is not None and len(wired) > 1:
            state = state.with_name(f"{state.stem}-u{unit:02d}{state.suffix}")
        panels.append((Panel(PanelLayout.from_registry(path), state_file=state, noise_pct=args.noise_pct,
                             profile=args.profile, seed=args.seed + unit), unit))
    everyone = [panel for panel, _ in panels]
    for panel in everyone:
        panel.metered = everyone
    devices = [build_device(panel, unit) for panel, unit in panels]
    server = ModbusTcpServer(devices[0] if len(devices) == 1 else devices, address=(args.host, args.port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.shutdown()))
    for panel, unit in panels:
        layout = panel.layout
        on = sorted(r.circuit for r in layout.relays if panel.relays[r.coil])
        _log.info("panel (unit id %s) on %s:%d: %d relays (on: %s), %d kW registers (%s table), relays %s",
                  unit or "any", args.host, args.port, len(layout.relays),
                  ", ".join(on) if len(on) <= 10 else f"{len(on)} circuits", len(layout.powers), layout.table,
                  f"latched in {args.state_file}" if args.state_file else "back to power-on defaults at restart")
    await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m building_device", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", required=True, action="append",
                   help="the driver's registry CSV (Role/Circuit/Rated kW columns); FILE:UNIT, repeated, for a gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5020)
    p.add_argument("--unit-id", type=int, default=0, help="Modbus unit id to answer (0 = every unit id)")
    p.add_argument("--state-file", help="latch the relays in this file across restarts (default: power-on defaults)")
    p.add_argument("--noise-pct", type=float, default=1.0)
    p.add_argument("--profile", choices=["flat", "diurnal"], default="flat")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as exc:
        print(f"building_device: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
