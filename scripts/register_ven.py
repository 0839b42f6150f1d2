#!/usr/bin/env python3
"""Register this VEN in the backend: POST {BACKEND_URL}/api/vens/ with the seed's body

    {"name": "VEN <thing>", "status": "online", "location": {"lat", "lon"}, "registrationId": "<thing>"}

    register_ven.py                         # POST it from here (BACKEND_URL or --backend-url)
    register_ven.py --via-bridge            # ask the bridge agent to register (VIP RPC, platform's user)

2xx and 409 (already registered) count as registered.
Exit codes: 0 registered, 1 refused or failure, 2 usage (no BACKEND_URL), 4 backend unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

from ven_common.cloud_client import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    add_thing_arg,
    local_call,
    print_json,
    run_cli,
)
from ven_common.contract import BRIDGE_IDENTITY, registration_body


def post(url: str, body: dict, timeout: float) -> tuple[int, str]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise CliError(f"backend {url} is unreachable: {reason}; check BACKEND_URL and that the backend is up",
                       EXIT_UNREACHABLE) from None
    except TimeoutError:
        raise CliError(f"backend {url} did not answer within {timeout:g} s; check BACKEND_URL", EXIT_UNREACHABLE) from None


def direct(a: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    base = (a.backend_url or "").strip()
    if not base:
        raise CliError("BACKEND_URL is not set: export BACKEND_URL=http://<backend> or pass --backend-url", EXIT_USAGE)
    if not base.startswith(("http://", "https://")):
        parser.error(f"--backend-url must start with http:// or https://, got {base!r}")
    url = base.rstrip("/") + "/api/vens/"
    body = registration_body(a.ven_id, a.lat, a.lon)
    status, text = post(url, body, a.timeout)
    ok = 200 <= status < 300 or status == 409
    result = {"ok": ok, "status": status, "url": url, "registrationId": a.ven_id,
              "detail": "already registered" if status == 409 else ("registered" if ok else text[:300])}
    print_json(result)
    if not ok:
        print(f"error: the backend refused the registration: HTTP {status}", file=sys.stderr)
        return EXIT_UNREACHABLE if status in (408, 429) or status >= 500 else EXIT_FAILURE
    return EXIT_OK


def via_bridge(a: argparse.Namespace) -> int:
    result = local_call(BRIDGE_IDENTITY, "register", timeout=a.timeout + 5)
    if not isinstance(result, dict):
        raise CliError(f"unexpected answer from {BRIDGE_IDENTITY}.register: {result!r}")
    print_json(result)
    if result.get("ok"):
        return EXIT_OK
    detail = str(result.get("detail") or "")
    if "not configured" in detail:
        raise CliError("the bridge has no BACKEND_URL: export BACKEND_URL=... and run ./scripts/ven_control.sh start "
                       "again (it re-renders the bridge config), or use --direct", EXIT_USAGE)
    status = result.get("status")
    retry = status is None or status in (408, 429) or (isinstance(status, int) and status >= 500)
    print(f"error: registration failed: {detail} (the bridge keeps retrying in the background)" if retry
          else f"error: the backend refused the registration: {detail}", file=sys.stderr)
    return EXIT_UNREACHABLE if retry else EXIT_FAILURE


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_thing_arg(p)
    p.add_argument("--backend-url", default=os.environ.get("BACKEND_URL"), help="default: BACKEND_URL")
    p.add_argument("--lat", type=float, default=37.7749)
    p.add_argument("--lon", type=float, default=-122.4194)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for the HTTP request (default 10)")
    p.add_argument("--via-bridge", action="store_true", help="ask the bridge agent (its BACKEND_URL) over VIP RPC")
    p.add_argument("--direct", action="store_true", help="POST from this process (the default; overrides --via-bridge)")
    a = p.parse_args()
    return via_bridge(a) if a.via_bridge and not a.direct else direct(a, p)


if __name__ == "__main__":
    run_cli(main)
