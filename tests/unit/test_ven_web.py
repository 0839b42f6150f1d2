"""The web page through its host protocol, without an agent or a platform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ven_common.contract import BusTopics

from venagent.web import MeteringRing, VenWeb, live_mv, page_state


class Host:
    identity = "ven.agent"

    def __init__(self) -> None:
        self.events_sent: list[tuple[float, float, str | None]] = []
        self.bridge_up = True

    def peers(self) -> list[str]:
        return ["platform.web"]

    def get_status(self) -> dict[str, Any]:
        return {"active_event": {"event_id": "e1", "start_ts": 1000.0, "end_ts": 1600.0, "requested_shed_kw": 2.0,
                                 "actual_shed_kw": 2.1, "shed_circuits": ["HVAC"],
                                 "mv": {"baseline_kw": 10.0, "mean_shed_kw": 2.5, "delivered_kwh": 0.2083,
                                        "covered_sec": 300.0}}}

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        return [{"event_id": "e1"}][:limit]

    def thing(self) -> str | None:
        return "volttron_thing"

    def send_event(self, shed_kw: float, duration_sec: float, event_id: str | None = None) -> dict[str, Any]:
        self.events_sent.append((shed_kw, duration_sec, event_id))
        return {"status": "accepted"}

    def restore(self) -> dict[str, Any]:
        return {"status": "accepted"}

    def bridge_status(self) -> Any:
        if not self.bridge_up:
            raise TimeoutError("no answer")
        return {"connected": True}


class Routes:
    def unregister_all_routes(self) -> None: ...
    def get_web_root(self) -> str: return "/nonexistent"
    def register_path(self, prefix: str, static_path: str | None = None) -> None: ...
    def register_endpoint(self, endpoint: str, callback: Any) -> None: ...


def test_live_mv_and_page_state_are_pure() -> None:
    ring = MeteringRing()
    ring.add({"ts": 1100.0, "power_kw": 8.0, "shed_kw": 2.0, "active_event": "e1"}, 2.0)
    ring.add({"ts": 1200.0, "power_kw": 7.0, "shed_kw": 3.0, "active_event": "e1"}, 2.0)
    mv = live_mv(Host().get_status(), now=1300.0)
    # The core's running M&V, shown as it is (not recomputed from the page's ring)
    assert mv is not None and mv["mean_shed_kw"] == 2.5 and mv["performance"] == 1.25
    assert mv["delivered_kwh"] == 0.2083
    assert mv["elapsed_sec"] == 300.0 and mv["remaining_sec"] == 300.0
    state = page_state(now=1300.0, ven_id="v", status={"active_event": None}, events=[], ring=ring, since=1150.0,
                       bridge={}, chart_lib=None)
    assert state["live_mv"] is None and [r[0] for r in state["readings"]] == [1200.0]


def test_snapshot_and_commands_through_the_host(tmp_path: Path) -> None:
    host = Host()
    web = VenWeb(host, Routes(), vhome=tmp_path)
    web.observe(BusTopics.STATUS, host.get_status())
    web.observe(BusTopics.METERING, {"ts": 1100.0, "power_kw": 8.0, "shed_kw": 2.0, "active_event": "e1"})
    snap = web.snapshot(since=0.0)
    assert snap["ven_id"] == "volttron_thing" and snap["events"] == [{"event_id": "e1"}]
    assert snap["bridge"] == {"connected": True, "available": True}
    web._token = "secret"
    status, body, _ = web._command({"REQUEST_METHOD": "POST"}, {"token": "wrong", "op": "restore"})
    assert status.startswith("401")
    status, body, _ = web._command({"REQUEST_METHOD": "POST"},
                                   {"token": "secret", "op": "event", "shed_kw": 1.5, "duration_sec": 60})
    assert status.startswith("200") and json.loads(body)["ack"]["status"] == "accepted"
    assert host.events_sent == [(1.5, 60, None)]


def test_an_unanswering_bridge_shows_as_unavailable(tmp_path: Path) -> None:
    host = Host()
    host.bridge_up = False
    web = VenWeb(host, Routes(), vhome=tmp_path)
    bridge = web.snapshot()["bridge"]
    assert bridge["available"] is False and "not answering" in bridge["detail"]
