#!/usr/bin/env python3
"""Print the VEN's shadow in the seed's shape:

    {"power_kw", "shed_kw", "active_event", "circuits": [{"name", "enabled", "current_kw"}, ...]}

It reads the thing's classic Device Shadow (state.reported) from the shadow service, as the
backend does: AWS IoT's, or the local stand-in beside the local broker (``get`` on
$aws/things/{venId}/shadow/get). --full prints the whole reported state (baseline, priorities,
overrides, device faults, the bridge's counters) and --document the shadow document with its
desired state, delta, metadata and version; --from-ven asks the VEN itself instead ({"op":
"status"} on ven/cmd/{venId}, the ack carries its status); --local asks over VIP RPC.
Exit codes: 0 ok, 1 failure, 2 usage, 4 broker unreachable or no answer in time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

from ven_common.cloud_client import (
    EXIT_OK,
    CliError,
    CloudClient,
    add_connection_args,
    add_thing_arg,
    local_call,
    new_correlation_id,
    print_json,
    run_cli,
    settings_from_args,
)
from ven_common.contract import VEN_IDENTITY, Op

SEED_CIRCUIT_KEYS = ("name", "enabled", "current_kw")


def seed_shape(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The seed's shadow document from a full status snapshot (fields only ever added upstream)."""
    return {
        "power_kw": snapshot.get("power_kw"),
        "shed_kw": snapshot.get("shed_kw"),
        "active_event": snapshot.get("active_event"),
        "circuits": [{k: c.get(k) for k in SEED_CIRCUIT_KEYS} for c in snapshot.get("circuits") or []],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_thing_arg(p)
    p.add_argument("--full", action="store_true", help="print the whole status snapshot")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the VEN (default 10)")
    p.add_argument("--local", action="store_true", help="ask over VIP RPC (as the platform's user)")
    p.add_argument("--from-ven", action="store_true", help="ask the VEN with a status command instead of the shadow")
    p.add_argument("--document", action="store_true", help="print the whole shadow document (desired, delta, version)")
    p.add_argument("--compact", action="store_true", help="print JSON on one line")
    add_connection_args(p)
    a = p.parse_args()
    if a.local:
        snapshot = local_call(VEN_IDENTITY, "get_status", timeout=a.timeout)
    elif not a.from_ven:
        with CloudClient(settings_from_args(a)) as client:
            doc = client.shadow_get(a.timeout)
        if a.document:
            print_json(doc, a.compact)
            return EXIT_OK
        snapshot = (doc.get("state") or {}).get("reported")
    else:
        command = {"op": Op.STATUS.value, "correlationId": new_correlation_id("shadow"), "venId": a.ven_id}
        with CloudClient(settings_from_args(a)) as client:
            ack = client.request(command, a.timeout)
        if ack.get("status") != "accepted":
            raise CliError(f"the VEN rejected the status request: {ack.get('reason') or ack.get('reason_code')}")
        snapshot = ack.get("status_snapshot")
    if not isinstance(snapshot, dict):
        raise CliError("the VEN's answer carries no status snapshot (is it an older VEN?)")
    print_json(snapshot if a.full else seed_shape(snapshot), a.compact)
    return EXIT_OK


if __name__ == "__main__":
    run_cli(main)
