"""Call a VIP RPC method on a running platform: python ven_rpc.py PEER METHOD [JSON_ARG ...].

Used by ven_control.sh (status, --local commands). Runs as the platform's user (it needs
VOLTTRON_HOME's credential store). Prints JSON; exit 1 with a one-line error on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _bridge_line(status: dict) -> str:
    state = "connected" if status.get("connected") else "DISCONNECTED"
    oldest = status.get("oldest_queued_age_sec")
    problem = ""
    if not status.get("connected"):
        problems = status.get("cert_errors") or [status.get("last_error")]
        problem = f" ({'; '.join(str(p) for p in problems if p)})" if any(problems) else ""
    return (f"bridge     {state} to {status.get('endpoint')} as {status.get('thing')}{problem}; "
            f"queue {status.get('queue_depth')} (oldest {'-' if oldest is None else f'{oldest:.0f} s'}), "
            f"sent {status.get('sent')}, acked {status.get('acked')}, dropped {status.get('dropped')}, "
            f"rejected {status.get('rejected')}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("peer")
    p.add_argument("method")
    p.add_argument("args", nargs="*", help="JSON-encoded positional arguments")
    p.add_argument("--format", choices=["json", "bridge"], default="json")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--identity", default="ven.operator",
                   help="VIP identity to call as (default ven.operator, the operator tool; created with vctl auth add)")
    a = p.parse_args()
    vhome = os.environ.get("VOLTTRON_HOME")
    if not vhome:
        print("error: VOLTTRON_HOME is not set", file=sys.stderr)
        return 1
    try:
        args = [json.loads(x) for x in a.args]
    except json.JSONDecodeError as exc:
        print(f"error: arguments must be JSON ({exc})", file=sys.stderr)
        return 2
    from ven_common import vip_client  # late: importing volttron patches the process with gevent

    try:
        agent = vip_client.connect(vhome, a.identity)
    except Exception as exc:  # noqa: BLE001 - one line for the operator, no traceback
        print(f"error: cannot reach the platform at {vhome}: {exc}", file=sys.stderr)
        return 1
    try:
        result = vip_client.call(agent, a.peer, a.method, *args, timeout=a.timeout)
    except Exception as exc:  # noqa: BLE001
        print(f"error: {a.peer}.{a.method} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        vip_client.stop(agent)
    print(_bridge_line(result) if a.format == "bridge" else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
