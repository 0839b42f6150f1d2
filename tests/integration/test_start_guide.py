"""The operations guide, run as printed (and the README's command blocks after it).

Every command of every ```bash block of `docs/operations-guide.md` (a verbatim copy of the seed's
guide) and of `README.md` is one test, in document order, run by bash as its text stands, from the
checkout, against a system that the guide's own `./scripts/ven_control.sh start` brings up (the
session's `controlled` system: own VEN_ROOT and ports). A command the guide gains later becomes a
test by itself: one this file has no check for must exit 0 without a traceback.

What is replaced, and only this: the original deployment's addresses (its AWS IoT endpoint, its
backend, the default log path), by this test system's (`LOCAL`). The PATH is a user's, without the
venv: the seed's scripts must find the project's environment by themselves.

Skipped, with the reason: `aws ...` (real AWS IoT / Kinesis only: `ven_control.sh doctor` is the
local check of the same causes), exports of the original deployment's endpoint and backend, and the
README's `run_tests.sh` (this suite). The Quick Reference's `send-event \\   # comment` is no line
continuation in any shell: it is run as printed (our script names the mistake, bash does not know
`--shed-kw`) and as meant (one line).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.support.backend import Backend
from tests.support.controlled import System, last_line
from tests.support.guide import Command, all_commands, blocks
from tests.support.system import REPO, wait_until

pytestmark = pytest.mark.platform

GUIDE = REPO / "docs/operations-guide.md"
DOCS = ((GUIDE, "guide"), (REPO / "README.md", "README"))
STEPS = all_commands(*DOCS)

AWS_ONLY = ("needs the real AWS account (IoT registry, rules, Kinesis): on the local default "
            "`./scripts/ven_control.sh doctor` checks the same causes (certificate, thing name, endpoint, "
            "command round trip, telemetry, backend health)")
SKIPS: list[tuple[str, str]] = [
    (r"^aws ", AWS_ONLY),
    (r"^export (IOT_ENDPOINT|BACKEND_URL)=", "points at the original deployment's AWS endpoint or backend, which "
     "nothing here can reach; the local default runs stand-ins for both (README: Pointing at a real AWS IoT endpoint)"),
    (r"run_tests\.sh", "the test command itself: it runs this suite"),
]


def _json_block(section_end: str) -> str:
    return next(b.text for b in blocks(GUIDE, "guide") if b.lang == "json" and b.section.endswith(section_end))


# The guide's own examples of what comes back: the ack and the shadow's shape.
GUIDE_ACK_KEYS = set(json.loads(_json_block("VEN Acknowledgment")))
_shadow_text = re.sub(r",\s*\n\s*\.\.\.\s*\n", "\n", _json_block("Check IoT Shadow"))
GUIDE_SHADOW = json.loads(_shadow_text)


def _local(system: System) -> dict[str, str]:
    """The original deployment's addresses -> this test system's."""
    return {
        "a1mgxpe8mg484j-ats.iot.us-west-2.amazonaws.com:8883": f"127.0.0.1:{system.env['BROKER_PORT']}",
        "http://backend-alb-948465488.us-west-2.elb.amazonaws.com": f"http://127.0.0.1:{system.env['BACKEND_PORT']}",
        "/tmp/ven_enhanced.log": system.env["VEN_LOG"],
    }


def _user_env(system: System) -> dict[str, str]:
    """The system's settings, on a user's PATH (no venv on it)."""
    path = ":".join(p for p in os.environ["PATH"].split(":") if not p.startswith(str(system.venv))
                    and "volttron-ven/venv" not in p)
    return dict(system.env, PATH=path or "/usr/bin:/bin")


def _text(command: Command, system: System) -> str:
    text = command.text
    for original, local in _local(system).items():
        text = text.replace(original, local)
    return text


def _run(text: str, system: System, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", text], check=False, cwd=REPO, env=_user_env(system), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _follow(text: str, system: System, enough: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
    """A command that follows (logs, telemetry): read its lines until `enough`, then end it."""
    proc = subprocess.Popen(["bash", "-c", text], cwd=REPO, env=_user_env(system), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    changed = threading.Condition()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with changed:
                lines.append(line.rstrip("\n"))
                changed.notify_all()
        with changed:
            changed.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with changed:
            changed.wait_for(lambda: enough(lines) or not reader.is_alive(), timeout)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        reader.join(5)
    return list(lines)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _ack(result: subprocess.CompletedProcess[str], op: str) -> dict:
    _ok(result)
    ack = json.loads(result.stdout)
    assert ack["op"] == op and ack["status"] == "accepted", ack
    if op == "event":
        assert set(ack) >= GUIDE_ACK_KEYS, f"the guide's ack has {sorted(GUIDE_ACK_KEYS - set(ack))}, ours not: {ack}"
    return ack


def _check_start(result: subprocess.CompletedProcess[str], system: System) -> None:
    _ok(result)
    assert last_line(result).startswith("start: "), result.stdout[-2000:]
    wait_until(lambda: "bridge     connected" in system.control("status", timeout=120).stdout, 60, 1.0,
               "the bridge connected")


def _check_status(result: subprocess.CompletedProcess[str], system: System) -> None:
    _ok(result)
    for part in ("platform   running", "agent      ven.agent", "agent      ven.bridge", "broker     running",
                 "bridge     connected"):
        assert part in result.stdout, result.stdout


def _check_shadow(command: str, system: System, shedding: bool) -> None:
    """The guide's shape; after an event (Quick Reference: "Check load shedding") the shed shows."""
    def shadow() -> dict:
        result = _run(command, system)
        _ok(result)
        return json.loads(result.stdout)

    # Right after a start the VEN may not have read the building yet, and right after a switch it has not
    # read its effect yet (power or shed unknown: null, truthfully); the shadow shows them within seconds.
    def numeric(d: dict) -> bool:
        return isinstance(d.get("power_kw"), (int, float)) and isinstance(d.get("shed_kw"), (int, float))
    wait_until(lambda: numeric(shadow()), 40, 1.0, "the shadow's power_kw and shed_kw")
    doc = shadow()
    assert set(GUIDE_SHADOW) <= set(doc), f"missing {sorted(set(GUIDE_SHADOW) - set(doc))}: {doc}"
    circuit_keys = set(GUIDE_SHADOW["circuits"][0])
    assert doc["circuits"] and all(circuit_keys <= set(c) for c in doc["circuits"]), doc["circuits"]
    assert isinstance(doc["power_kw"], (int, float)) and isinstance(doc["shed_kw"], (int, float))
    if shedding:
        def shows_the_shed() -> bool:
            d = shadow()
            return d["active_event"] is not None and d["shed_kw"] > 0

        wait_until(shows_the_shed, 30, 1.0, "the shadow showing the shed")


def _check_stop(result: subprocess.CompletedProcess[str], system: System, last: bool) -> None:
    _ok(result)
    status = system.control("status", timeout=120)
    assert status.returncode == 3 and "platform   not running" in status.stdout, status.stdout
    if not last:   # the test's own step, to go on with the guide: start again
        again, _ = system.start()
        _check_start(again, system)


def _check_test_manually(text: str, system: System) -> None:
    """The seed's publisher sends as the backend; the backend sees the VEN's ack."""
    backend = Backend(REPO / "certs", int(system.env["BROKER_PORT"])).start()
    try:
        result = _run(text, system)
        _ok(result)
        corr = re.search(r"published event (\S+) on ven/cmd/volttron_thing", result.stderr)
        assert corr, result.stderr
        ack = backend.wait_json("ven/ack/volttron_thing", lambda a: a.get("correlationId") == corr.group(1), 20)
        assert ack["status"] == "accepted" and set(ack) >= GUIDE_ACK_KEYS, ack
        printed = json.loads(result.stdout)  # the script shows the user the VEN's own ack, the one the backend saw
        assert printed["correlationId"] == corr.group(1) and printed["status"] == ack["status"], result.stdout
    finally:
        backend.stop()
    # The test's own step: the probe's event runs 180 s, and the VEN refuses an overlapping one (the
    # Quick Reference's, next) with `conflict`, naming it. An operator ends a probe the same way.
    _ack(system.control("restore", timeout=120), "restore")


def _default_of(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != name}
    return subprocess.run(["bash", "-c", f'source scripts/lib.sh; printf %s "${name}"'], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[s.label for s in STEPS])
def test_the_guide_as_printed(index: int, controlled: System) -> None:
    command = STEPS[index]
    text = _text(command, controlled)
    flat = " ".join(text.split())
    for pattern, reason in SKIPS:
        if re.search(pattern, flat):
            pytest.skip(reason)
    last = index == len(STEPS) - 1
    t0 = time.monotonic()

    if command.form == "broken":   # `send-event \   # comment`: our script names the mistake
        result = _run(text, controlled)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "does not continue the line" in result.stderr, result.stderr
    elif command.form == "stray":  # what a shell then runs: options as a command of their own
        result = _run(text, controlled)
        assert result.returncode == 127, result
    elif m := re.match(r"^export (\w+)=(\S+)", flat):
        assert _default_of(m.group(1)) == m.group(2), f"the guide's {m.group(1)} is not our default"
    elif re.search(r"ven_control\.sh start\b", flat):
        _check_start(_run(text, controlled, timeout=900), controlled)
    elif re.search(r"ven_control\.sh status\b", flat):
        _check_status(_run(text, controlled), controlled)
    elif re.search(r"ven_control\.sh send-event\b", flat):
        ack = _ack(_run(text, controlled), "event")
        wanted = re.search(r"--shed-kw (\S+)", flat)
        assert wanted and ack["requested_shed_kw"] == float(wanted.group(1)), ack
        event_id = re.search(r"--event-id (\S+)", flat)
        assert event_id is None or ack["event_id"] == event_id.group(1)
    elif re.search(r"ven_control\.sh restore\b", flat):
        _ack(_run(text, controlled), "restore")
    elif re.search(r"ven_control\.sh shadow\b", flat):
        # After an event and before its restore (the Quick Reference's "Check load shedding"), the shed shows.
        before = [" ".join(_text(s, controlled).split()) for s in STEPS[:index] if s.form in ("printed", "meant")]
        acting = [t for t in before if re.search(r"ven_control\.sh (send-event|restore|stop)\b", t)]
        shedding = bool(acting) and "send-event" in acting[-1]
        _check_shadow(text, controlled, shedding)
    elif re.search(r"ven_control\.sh stop\b", flat):
        _check_stop(_run(text, controlled, timeout=300), controlled, last)
    elif re.search(r"ven_control\.sh register\b", flat):
        result = _run(text, controlled)
        _ok(result)
        assert json.loads(result.stdout)["ok"] is True, result.stdout   # 201, or 409: the bridge registered at start
        vens = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{controlled.env['BACKEND_PORT']}/api/vens/",
                                                 timeout=10).read())
        assert any(v["registrationId"] == "volttron_thing" for v in vens), vens
    elif re.search(r"ven_control\.sh (logs|telemetry)\b|^tail -f ", flat):
        reading = "telemetry" in flat
        lines = _follow(text, controlled, lambda ls: sum(("volttron_thing power" in ln) if reading else bool(ln)
                                                         for ln in ls) >= 2)
        if reading:
            assert "Traceback" not in "\n".join(lines)
            assert sum("volttron_thing power" in ln for ln in lines) >= 2, lines
        else:   # the platform's log as it is (it may hold an agent's traceback: that is its content)
            assert len([ln for ln in lines if ln.strip()]) >= 2, lines
    elif flat.startswith("curl ") and "/api/vens/" in flat:
        result = _run(text, controlled)
        _ok(result)
        body = json.loads(result.stdout)
        # 201 with the VEN, or 409 because the bridge registered it at its start: the guide's API either way.
        assert body.get("registrationId") == "volttron_thing" or "already registered" in str(body.get("detail")), body
    elif flat.startswith("curl ") and flat.endswith("/health"):
        result = _run(text, controlled)
        _ok(result)
        assert json.loads(result.stdout)["status"] == "ok", result.stdout
    elif flat.startswith("openssl s_client"):
        result = _run(text, controlled, timeout=60)
        assert result.returncode == 0 and "Verify return code: 0 (ok)" in result.stdout, result.stdout[-2000:]
    elif "ven_cmd_publish.py" in flat:
        _check_test_manually(text, controlled)
    elif re.search(r"ven_control\.sh backend create-event\b", flat):
        result = _run(text, controlled)
        _ok(result)
        assert json.loads(result.stdout)["event_id"], result.stdout
    else:   # a command this file does not know yet: it must at least work
        _ok(_run(text, controlled))
    print(f"{command.label}: {time.monotonic() - t0:.1f} s")
