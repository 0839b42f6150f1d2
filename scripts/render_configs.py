"""Render the agent and device configs for one instance (thing name, cert folder, device topic).

Used by install_agents.sh and by the test fixtures, so both install exactly the same configs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ven_common.contract import DEFAULT_DRIVER_TIMEOUT_SEC, DEFAULT_RPC_TIMEOUT_SEC, timeout_order_problem

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEVICE = "campus/building/sim"
# The two buildings: the in-process simulation, and the Modbus TCP panel (its own process) read
# and written through the real VOLTTRON Modbus driver. The VEN's circuits name points of one of
# them; switching is configuration only.
BUILDING_DEVICES = {"simbuilding": "campus/building/sim", "modbus": "campus/building/panel"}


class RenderError(ValueError):
    """The configurations cannot work together: the message names the fields and the fix."""


def render(out: Path, thing: str, certs: Path, device: str, endpoint: str | None, port: int,
           noise_pct: float | None = None, panel_port: int = 5020, backend_url: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sim = json.loads((REPO / "config/driver/sim.config").read_text())
    if noise_pct is not None:
        sim["driver_config"]["noise_pct"] = noise_pct
    (out / "sim.config").write_text(json.dumps(sim, indent=2))
    panel = json.loads((REPO / "config/driver/panel.config").read_text())
    panel["driver_config"]["port"] = panel_port
    (out / "panel.config").write_text(json.dumps(panel, indent=2))

    ven = json.loads((REPO / "config/ven-agent.json").read_text())
    ven["thing_name"] = thing
    for circuit in ven["circuits"]:
        if circuit["device"] == DEFAULT_DEVICE:
            circuit["device"] = device
    if ven.get("meter") and ven["meter"]["device"] == DEFAULT_DEVICE:
        ven["meter"]["device"] = device
    (out / "ven-agent.json").write_text(json.dumps(ven, indent=2))

    bridge = json.loads((REPO / "config/bridge.json").read_text())
    bridge.update({
        "thing_name": thing,
        "endpoint": endpoint or "localhost",
        "port": port,
        "ca_path": str(certs / "ca.pem"),
        "cert_path": str(certs / "client.crt"),
        "key_path": str(certs / "client.key"),
    })
    if backend_url:
        bridge["backend_url"] = backend_url
    problem = timeout_order_problem(float(bridge.get("rpc_timeout_sec", DEFAULT_RPC_TIMEOUT_SEC)),
                                    float(ven.get("driver_timeout_sec", DEFAULT_DRIVER_TIMEOUT_SEC)))
    if problem:
        raise RenderError(problem)
    (out / "bridge.json").write_text(json.dumps(bridge, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--thing", default=os.environ.get("IOT_THING_NAME", "volttron_thing"))
    p.add_argument("--certs", type=Path, required=True)
    p.add_argument("--device", default=None, help="the device topic the VEN's circuits live on")
    p.add_argument("--building", choices=sorted(BUILDING_DEVICES), default=os.environ.get("VEN_BUILDING", "modbus"))
    p.add_argument("--panel-port", type=int, default=int(os.environ.get("PANEL_PORT") or 5020))
    p.add_argument("--backend-url", default=os.environ.get("BACKEND_URL") or None)
    p.add_argument("--endpoint", default=os.environ.get("IOT_ENDPOINT") or None)
    # A real endpoint listens on IOT_PORT (8883 at AWS); BROKER_PORT is only the local stand-in's.
    default_port = os.environ.get("IOT_PORT") or (None if os.environ.get("IOT_ENDPOINT") else os.environ.get("BROKER_PORT"))
    p.add_argument("--port", type=int, default=int(default_port or 8883))
    a = p.parse_args()
    try:
        render(a.out, a.thing, a.certs.resolve(), a.device or BUILDING_DEVICES[a.building], a.endpoint, a.port,
               panel_port=a.panel_port, backend_url=a.backend_url)
    except RenderError as exc:
        sys.exit(f"render_configs.py: error: {exc}")


if __name__ == "__main__":
    main()
