#!/usr/bin/env python3
"""The operator's view of the backend (the local stand-in, or any backend with the same API).

    backend_cli.py vens                       registered VENs (online or not)
    backend_cli.py events                     DR events in the backend
    backend_cli.py readings [--ven-id ID] [--limit N]
    backend_cli.py create-event --shed-kw KW --duration S [--start-in S | --start-ts T] [--ven-id ID ...] [--event-id ID]
    backend_cli.py cancel-event EVENT_ID

An event created here is dispatched by the backend's EventCommandService when it becomes active
(every 5 s it publishes it to ven/cmd/{registration_id} for each online VEN). BACKEND_URL picks
the backend (default http://127.0.0.1:8000, the local stand-in). Exit codes: 0 ok, 1 refused or
failure, 2 usage, 4 backend unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

from ven_common.contract import DEFAULT_THING_NAME


class Unreachable(Exception):
    pass


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"detail": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"backend {base} unreachable ({getattr(exc, 'reason', exc)}): "
                          "is it running? ./scripts/ven_control.sh status") from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("BACKEND_URL") or "http://127.0.0.1:8000")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("vens")
    sub.add_parser("events")
    r = sub.add_parser("readings")
    r.add_argument("--ven-id")
    r.add_argument("--limit", type=int, default=10)
    c = sub.add_parser("create-event")
    c.add_argument("--shed-kw", type=float, required=True)
    c.add_argument("--duration", type=float, required=True, help="seconds")
    c.add_argument("--start-in", type=float, default=0.0, help="seconds from now (default 0)")
    c.add_argument("--start-ts", type=float, help="epoch seconds (instead of --start-in)")
    c.add_argument("--ven-id", action="append", help=f"target VEN (repeatable; default {DEFAULT_THING_NAME})")
    c.add_argument("--event-id")
    x = sub.add_parser("cancel-event")
    x.add_argument("event_id")
    a = p.parse_args()
    try:
        if a.cmd == "vens":
            status, doc = call(a.url, "GET", "/api/vens/")
        elif a.cmd == "events":
            status, doc = call(a.url, "GET", "/api/events/")
        elif a.cmd == "readings":
            query = f"?limit={a.limit}" + (f"&venId={a.ven_id}" if a.ven_id else "")
            status, doc = call(a.url, "GET", "/api/readings" + query)
        elif a.cmd == "create-event":
            start = a.start_ts if a.start_ts is not None else time.time() + a.start_in
            body: dict[str, Any] = {"venIds": a.ven_id or [os.environ.get("IOT_THING_NAME", DEFAULT_THING_NAME)],
                                    "shed_kw": a.shed_kw, "startTime": start, "endTime": start + a.duration}
            if a.event_id:
                body["event_id"] = a.event_id
            status, doc = call(a.url, "POST", "/api/events/", body)
        else:
            status, doc = call(a.url, "DELETE", f"/api/events/{a.event_id}")
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    if status >= 400:
        detail = doc.get("detail") if isinstance(doc, dict) else doc
        print(f"error: the backend refused ({status}): {json.dumps(detail)[:500]}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
