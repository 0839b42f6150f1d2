#!/usr/bin/env python3
"""Follow the VENs' metering on volttron/metering, as the backend receives it.

One line per reading; batched messages {"batch": true, "readings": [...]} are unrolled.

    ven_telemetry_listen.py                 # follow volttron_thing's readings until Ctrl-C
    ven_telemetry_listen.py --count 5       # stop after 5 readings
    ven_telemetry_listen.py --all --json    # every VEN, one JSON document per line

Exit codes: 0 ok, 1 failure, 2 usage, 4 broker unreachable or no reading within --timeout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

from ven_common.cloud_client import (
    EXIT_OK,
    CloudClient,
    add_connection_args,
    add_thing_arg,
    run_cli,
    settings_from_args,
)
from ven_common.contract import METERING_TOPIC


def unroll(doc: Any) -> Iterator[dict[str, Any]]:
    """The readings in one volttron/metering message (single or batched)."""
    if isinstance(doc, dict) and doc.get("batch") is True and isinstance(doc.get("readings"), list):
        ven = doc.get("venId")
        for r in doc["readings"]:
            if isinstance(r, dict):
                yield r if "venId" in r or ven is None else {"venId": ven, **r}
    elif isinstance(doc, dict):
        yield doc


def _num(value: Any, fmt: str = "6.2f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "     -"


def human(r: dict[str, Any]) -> str:
    ts = r.get("ts")
    when = dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if isinstance(ts, (int, float)) else "??:??:??"
    off = [c.get("name") for c in r.get("circuits") or [] if isinstance(c, dict) and c.get("enabled") is False]
    event = r.get("active_event") or "-"
    return (f"{when} {r.get('venId', '?')} power {_num(r.get('power_kw'))} kW  baseline {_num(r.get('baseline_kw'))} kW  "
            f"shed {_num(r.get('shed_kw'))} kW  event {event}  off: {', '.join(map(str, off)) or '-'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_thing_arg(p)
    p.add_argument("--all", action="store_true", help="show every VEN's readings, not only --ven-id's")
    p.add_argument("--count", type=int, help="stop after N readings")
    p.add_argument("--json", action="store_true", help="one JSON document per reading")
    p.add_argument("--topic", default=METERING_TOPIC, help=f"metering topic (default {METERING_TOPIC})")
    p.add_argument("--timeout", type=float,
                   help="give up (exit 4) after this many seconds without a reading (default: 60 with --count, "
                        "else wait forever)")
    add_connection_args(p)
    a = p.parse_args()
    if a.count is not None and a.count <= 0:
        p.error("--count must be > 0")
    idle = a.timeout if a.timeout is not None else (60.0 if a.count else None)
    seen = 0
    with CloudClient(settings_from_args(a)) as client:
        if not a.json:
            print(f"following {a.topic} on {client.s.where} ({'all VENs' if a.all else a.ven_id}); Ctrl-C stops",
                  file=sys.stderr, flush=True)
        for _topic, payload in client.stream(a.topic, idle):
            try:
                doc = json.loads(payload)
            except ValueError:
                print(f"warning: skipped a message that is not JSON ({len(payload)} bytes)", file=sys.stderr)
                continue
            for reading in unroll(doc):
                if not a.all and reading.get("venId") != a.ven_id:
                    continue
                print(json.dumps(reading, separators=(",", ":")) if a.json else human(reading), flush=True)
                seen += 1
                if a.count and seen >= a.count:
                    return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    run_cli(main)
