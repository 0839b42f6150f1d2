#!/usr/bin/env python3
"""Send a command to a VEN the way the backend does: MQTT on ven/cmd/{venId} as cloud_backend.

    ven_cmd_publish.py --ven-id volttron_thing --op event --shed-kw 1.0 --duration 180
    ven_cmd_publish.py --op restore
    ven_cmd_publish.py --op event --shed-kw 2 --duration 300 --local     # VIP RPC, as the platform's user
    ven_cmd_publish.py --op status --no-wait                             # publish only, print the command

Prints the VEN's ack as JSON (the guide offers this script for "VEN Not Receiving Commands": whether the VEN
answered is the point), or says in one line that none came within --timeout. Exit codes: 0 accepted (or
published, with --no-wait), 1 rejected or failure, 2 usage, 4 broker unreachable or no ack in time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import assert_never

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

from ven_common.cloud_client import (
    EXIT_FAILURE,
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
from ven_common.contract import VEN_IDENTITY, MqttTopics, Op, event_command, restore_command

OPS = [op.value for op in Op]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_thing_arg(p)
    p.add_argument("--op", choices=OPS, required=True, help="command to send")
    p.add_argument("--shed-kw", type=float, help="kW to shed (event)")
    p.add_argument("--duration", type=float, help="event duration in seconds (event)")
    p.add_argument("--event-id", help="event id (event: default evt-<epoch>; cancel: required)")
    p.add_argument("--start-ts", type=float, help="event start, epoch seconds (default: now)")
    p.add_argument("--correlation-id", help="correlationId (default: generated)")
    p.add_argument("--wait-ack", action="store_true",
                   help=f"wait for the VEN's ack on {MqttTopics('{venId}').ack} and print it (the default; kept for "
                        "old scripts)")
    p.add_argument("--no-wait", action="store_true", help="only publish the command and print it, do not wait")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the ack (default 10)")
    p.add_argument("--local", action="store_true",
                   help="send over VIP RPC to the local VEN agent instead of MQTT (needs VOLTTRON_HOME, "
                        "run as the platform's user; ven_control.sh does this)")
    p.add_argument("--compact", action="store_true", help="print JSON on one line")
    add_connection_args(p)
    return p


def build_command(a: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    now = time.time()
    op = Op(a.op)
    match op:  # exhaustive over the contract's ops: a new op without a case here is a type error (mypy)
        case Op.EVENT:
            if a.shed_kw is None or a.duration is None:
                parser.error("--op event needs --shed-kw and --duration")
            if not a.shed_kw > 0:
                parser.error(f"--shed-kw must be > 0, got {a.shed_kw:g}")
            if not a.duration > 0:
                parser.error(f"--duration must be > 0 seconds, got {a.duration:g}")
            duration = int(a.duration) if float(a.duration).is_integer() else a.duration
            return event_command(correlation_id=a.correlation_id or new_correlation_id("corr"), ven_id=a.ven_id,
                                 event_id=a.event_id or f"evt-{int(now)}", shed_kw=a.shed_kw, duration_sec=duration,
                                 start_ts=a.start_ts)
        case Op.RESTORE:
            return restore_command(correlation_id=a.correlation_id or new_correlation_id("restore"), ven_id=a.ven_id)
        case Op.CANCEL:
            if not a.event_id:
                parser.error("--op cancel needs --event-id")
            return {"op": Op.CANCEL.value, "correlationId": a.correlation_id or new_correlation_id("cancel"),
                    "venId": a.ven_id, "event_id": a.event_id}
        case Op.STATUS:
            return {"op": Op.STATUS.value, "correlationId": a.correlation_id or new_correlation_id("status"),
                    "venId": a.ven_id}
        case _:
            assert_never(op)


def report(ack: dict, compact: bool) -> int:
    print_json(ack, compact)
    if ack.get("status") != "accepted":
        why = ack.get("reason") or ack.get("reason_code") or "no reason given"
        print(f"error: the VEN rejected the {ack.get('op') or 'command'}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def main() -> int:
    parser = build_parser()
    a = parser.parse_args()
    if a.timeout <= 0:
        parser.error("--timeout must be > 0")
    command = build_command(a, parser)
    if a.local:
        ack = local_call(VEN_IDENTITY, "handle_command", command, "operator", timeout=a.timeout)
        if not isinstance(ack, dict):
            raise CliError(f"unexpected answer from {VEN_IDENTITY}: {ack!r}")
        return report(ack, a.compact)
    if a.no_wait and a.wait_ack:
        parser.error("--no-wait and --wait-ack exclude each other")
    with CloudClient(settings_from_args(a)) as client:
        if not a.no_wait:
            ack = client.request(command, a.timeout)  # no ack in time: one line, exit 4 (CliError)
            print(f"published {command['op']} {command['correlationId']} on {client.s.topics.cmd}; "
                  f"the VEN answered {ack.get('status')}", file=sys.stderr)
            return report(ack, a.compact)
        client.publish(client.s.topics.cmd, command)
    print(f"published {command['op']} {command['correlationId']} on {client.s.topics.cmd}", file=sys.stderr)
    print_json(command, a.compact)
    return EXIT_OK


if __name__ == "__main__":
    run_cli(main)
