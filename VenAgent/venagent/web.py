"""The operator's web page, served through the platform's web service (volttron-lib-web).

Routes (registered when ``platform.web`` is on the bus; without it the VEN runs unchanged):

* ``/``                 302 to ``/ven/index.html`` (the seed's Web UI at http://localhost:8080)
* ``/ven/...``          static files: ``venagent/webroot/ven`` plus the pinned chart library
                        (uPlot from npm, installed by install_agents.sh into the vendor folder)
* ``/ven/api/state``    GET, JSON: status, metering of the last hour (``?since=TS`` for what is
                        newer), events with their M&V reports, live M&V, the bridge's state
* ``/ven/api/command``  POST, JSON ``{"token", "op": "event"|"restore", ...}``: refused with 401
                        unless ``token`` is the operator token (``$VOLTTRON_HOME/ven_web_token``,
                        0600). The platform does not pass Authorization headers or cookies on
                        to agents, hence the token travels in the body.

The page (:class:`VenWeb`) owns a ring buffer of the last hour of readings (3600 at one reading a
second), fed from the agent's metering output, so the chart has history the moment the page opens.
It reaches the agent only through :class:`WebHost`; the agent is the only module that imports this
one. The page's view model (:func:`page_state`, :func:`live_mv`) is pure.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import shutil
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeGuard
from urllib.parse import parse_qs

import gevent

from ven_common.contract import BRIDGE_IDENTITY, BusTopics, Op
from ven_common.web_conf import TOKEN_FILE, ensure_token

_log = logging.getLogger(__name__)

PLATFORM_WEB = "platform.web"
RING_SIZE = 3600
HISTORY_SEC = 3600.0
BRIDGE_CACHE_SEC = 2.0
STATIC_DIR = Path(__file__).resolve().parent / "webroot"
CHART_LIB = "uplot"
CHART_LIB_FILES = ("dist/uPlot.iife.min.js", "dist/uPlot.min.css")
JSON_HEADERS = [["Content-Type", "application/json"], ["Cache-Control", "no-store"]]


def vendor_dir() -> Path:
    """Where install_agents.sh puts the npm-installed chart library (one copy per VEN_ROOT)."""
    explicit = os.environ.get("VEN_WEB_VENDOR")
    if explicit:
        return Path(explicit)
    root = os.environ.get("VEN_ROOT") or os.environ.get("VOLTTRON_HOME") or "~/.volttron"
    return Path(root).expanduser() / "web-vendor"


class MeteringRing:
    """The last hour of readings as compact rows: [ts, power, baseline, shed, target, event_id].

    Stored in columns allocated once (doubles, NaN for "none"), so the agent's memory does not grow
    while the hour fills: a deque of row lists grew it by ~1 MB in its first hour."""

    _COLUMNS = 5   # ts, power, baseline, shed, target

    def __init__(self, size: int = RING_SIZE) -> None:
        self.size = size
        self._cols = [array("d", [math.nan]) * size for _ in range(self._COLUMNS)]
        self._events: list[str | None] = [None] * size
        self._next = 0
        self._count = 0

    def add(self, reading: dict[str, Any], requested_kw: float | None) -> None:
        ts, power, shed = reading.get("ts"), reading.get("power_kw"), reading.get("shed_kw")
        if not _number(ts) or not _number(power):
            return
        event = reading.get("active_event")
        target = None
        if event and requested_kw is not None and _number(shed):
            # The event's M&V baseline is power + shed; the target is that minus the request.
            target = round(power + shed - requested_kw, 3)
        i = self._next
        for col, value in zip(self._cols, (round(ts, 3), power, reading.get("baseline_kw"), shed, target), strict=True):
            col[i] = float(value) if _number(value) else math.nan
        self._events[i] = str(event) if event else None
        self._next = (i + 1) % self.size
        self._count = min(self._count + 1, self.size)

    @property
    def rows(self) -> list[list[Any]]:
        """Oldest first."""
        start = (self._next - self._count) % self.size
        return [self._row((start + k) % self.size) for k in range(self._count)]

    def _row(self, i: int) -> list[Any]:
        return [None if math.isnan(col[i]) else col[i] for col in self._cols] + [self._events[i]]

    def since(self, ts: float | None) -> list[list[Any]]:
        if ts is None:
            return self.rows
        return [r for r in self.rows if r[0] > ts]


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class WebHost(Protocol):
    """What the page needs from the VenAgent."""

    @property
    def identity(self) -> str: ...
    def peers(self) -> list[str]: ...
    def get_status(self) -> dict[str, Any]: ...
    def recent_events(self, limit: int) -> list[dict[str, Any]]: ...
    def thing(self) -> str | None: ...
    def send_event(self, shed_kw: float, duration_sec: float, event_id: str | None = None) -> dict[str, Any]: ...
    def restore(self) -> dict[str, Any]: ...
    def bridge_status(self) -> Any:
        """``ven.bridge``'s get_status; raises when it does not answer."""


class WebRoutes(Protocol):
    """The platform web service's part of the agent (volttron's WebSubSystem)."""

    def unregister_all_routes(self) -> Any: ...
    def get_web_root(self) -> str: ...
    def register_path(self, prefix: str, static_path: str | None = None) -> Any: ...
    def register_endpoint(self, endpoint: str, callback: Callable[..., Any]) -> Any: ...


def live_mv(status: dict[str, Any], now: float) -> dict[str, Any] | None:
    """The active event's M&V so far, as the VEN's core computes it (``active_event.mv``: the same rules as the
    event's report, never a second computation here): None without an active event."""
    active = status.get("active_event")
    if not isinstance(active, dict):
        return None
    start = active.get("start_ts") or now
    requested = active.get("requested_shed_kw") or 0.0
    found = active.get("mv")
    mv: dict[str, Any] = found if isinstance(found, dict) else {}
    mean = mv.get("mean_shed_kw")
    return {
        "event_id": active.get("event_id"),
        "requested_shed_kw": requested,
        "current_shed_kw": active.get("actual_shed_kw"),
        "mean_shed_kw": mean,
        "performance": None if mean is None or not requested else round(mean / requested, 3),
        "delivered_kwh": mv.get("delivered_kwh"),
        "elapsed_sec": round(max(0.0, now - start), 1),
        "remaining_sec": None if active.get("end_ts") is None else round(max(0.0, active["end_ts"] - now), 1),
        "shed_circuits": active.get("shed_circuits") or [],
    }


def page_state(*, now: float, ven_id: str | None, status: dict[str, Any], events: list[dict[str, Any]],
               ring: MeteringRing, since: float | None, bridge: dict[str, Any],
               chart_lib: str | None) -> dict[str, Any]:
    """``/ven/api/state``: what the page shows (at most the last hour of readings)."""
    if since is None or since < now - HISTORY_SEC:
        since = now - HISTORY_SEC
    return {
        "ts": now,
        "ven_id": ven_id,
        "status": status,
        "readings": ring.since(since),
        "events": events,
        "live_mv": live_mv(status, now),
        "bridge": bridge,
        "chart_lib": chart_lib,
    }


def _response(status: str, body: dict[str, Any]) -> list[Any]:
    # [status, content, headers]: the web service's list form (a dict with an "error" key would be
    # mistaken for a JSON-RPC error by it, hence "detail" everywhere).
    return [status, json.dumps(body, default=str), JSON_HEADERS]


class VenWeb:
    def __init__(self, host: WebHost, routes: WebRoutes, vhome: Path | None = None) -> None:
        self._host = host
        self._routes = routes
        self._vhome = vhome or Path(os.environ.get("VOLTTRON_HOME", "~/.volttron")).expanduser()
        self.ring = MeteringRing()
        self._requested: dict[str, float] = {}
        self._bridge: tuple[float, dict[str, Any]] | None = None
        self._token: str | None = None
        self.enabled = False
        self.chart_lib: str | None = None

    # -- data in -------------------------------------------------------------------------
    def observe(self, topic: str, message: Any) -> None:
        """Every bus message the VEN publishes passes here (cheap: no I/O)."""
        if not isinstance(message, dict):
            return
        if topic == BusTopics.METERING:
            event = message.get("active_event")
            self.ring.add(message, self._requested.get(event) if event else None)
        elif topic == BusTopics.STATUS:
            active = message.get("active_event")
            if isinstance(active, dict) and isinstance(active.get("requested_shed_kw"), (int, float)):
                self._requested[str(active.get("event_id"))] = float(active["requested_shed_kw"])
                if len(self._requested) > 100:
                    self._requested.pop(next(iter(self._requested)))

    # -- registration --------------------------------------------------------------------
    def start(self) -> None:
        gevent.spawn(self._register_loop)

    def _register_loop(self) -> None:
        for attempt in range(30):
            try:
                peers = self._host.peers()
            except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - keep trying, the bus may be busy at start
                _log.debug("peerlist failed: %s", exc)
                peers = []
            if PLATFORM_WEB in peers:
                try:
                    self._register()
                    return
                except (Exception, gevent.Timeout) as exc:  # noqa: BLE001
                    text = str(exc)
                    if "does not have access" in text or "AuthException" in type(exc).__name__:
                        _log.error("web page not served: %s. Fix: vctl authz add agent %s --rpc-capabilities "
                                   "platform.web.register_endpoint platform.web.unregister_all_agent_routes "
                                   "platform.web.register_path_route platform.web.get_web_root, then restart "
                                   "the agent (install_agents.sh does this)", text, self._host.identity)
                        return
                    _log.warning("web registration failed (%s), retrying", text)
            elif attempt == 2:
                _log.info("no %s on the bus: the web page is off (enable it with a [web] section in "
                          "$VOLTTRON_HOME/config; ven_control.sh start writes one)", PLATFORM_WEB)
            gevent.sleep(min(2.0 * (attempt + 1), 20.0))

    def _register(self) -> None:
        web = self._routes
        self._token = ensure_token(self._vhome)
        # A crashed predecessor may have left routes behind; registering twice is refused.
        web.unregister_all_routes()
        root = Path(web.get_web_root())
        self._install_static(root)
        web.register_path(r"^/ven/.*")
        web.register_endpoint("/", self._redirect)
        web.register_endpoint("/ven/", self._redirect)
        web.register_endpoint("/ven/api/state", self._state)
        web.register_endpoint("/ven/api/command", self._command)
        self.enabled = True
        _log.info("web page registered at /ven/index.html (chart library: %s; operator token in %s)",
                  self.chart_lib or "MISSING", self._vhome / TOKEN_FILE)

    def _install_static(self, root: Path) -> None:
        """Copy the page and the pinned chart library into the agent's web root."""
        target = root / "ven"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(STATIC_DIR / "ven", target)
        package = vendor_dir() / "node_modules" / CHART_LIB
        vendor = target / "vendor"
        vendor.mkdir(exist_ok=True)
        try:
            version = json.loads((package / "package.json").read_text())["version"]
            for rel in CHART_LIB_FILES:
                shutil.copy2(package / rel, vendor / Path(rel).name)
            self.chart_lib = f"{CHART_LIB} {version}"
        except (OSError, ValueError, KeyError) as exc:
            self.chart_lib = None
            _log.error("chart library not found in %s (%s): the page shows no chart. Fix: run install_agents.sh "
                       "(it runs npm install %s)", package, exc, CHART_LIB)

    # -- endpoints -----------------------------------------------------------------------
    def _redirect(self, env: dict[str, Any], data: Any) -> list[Any]:
        return ["302 Found", "", [["Location", "/ven/index.html"], ["Cache-Control", "no-store"]]]

    def _state(self, env: dict[str, Any], data: Any) -> list[Any]:
        query = parse_qs(env.get("QUERY_STRING") or "")
        since: float | None = None
        try:
            since = float(query["since"][0]) if "since" in query else None
        except ValueError:
            return _response("400 Bad Request", {"detail": "since must be a number (epoch seconds)"})
        return _response("200 OK", self.snapshot(since))

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        host = self._host
        return page_state(now=time.time(), ven_id=host.thing(), status=host.get_status(),
                          events=host.recent_events(20), ring=self.ring, since=since,
                          bridge=self._bridge_status(), chart_lib=self.chart_lib)

    def _bridge_status(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._bridge is not None and now - self._bridge[0] < BRIDGE_CACHE_SEC:
            return self._bridge[1]
        try:
            result = self._host.bridge_status()
            value = dict(result, available=True) if isinstance(result, dict) else {"available": False}
        except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - the page shows the bridge as unavailable
            value = {"available": False, "detail": f"{BRIDGE_IDENTITY} not answering: {type(exc).__name__} {exc}"[:200]}
        self._bridge = (now, value)
        return value

    def _command(self, env: dict[str, Any], data: Any) -> list[Any]:
        if env.get("REQUEST_METHOD") != "POST":
            return _response("405 Method Not Allowed", {"detail": "POST a JSON body"})
        if not isinstance(data, dict):
            return _response("400 Bad Request", {"detail": "the body must be a JSON object (Content-Type: application/json)"})
        token = data.get("token")
        if not isinstance(token, str) or self._token is None or not hmac.compare_digest(token.encode(), self._token.encode()):
            _log.warning("web command refused: missing or wrong operator token (from %s)", env.get("REMOTE_ADDR"))
            return _response("401 Unauthorized", {"detail": f"operator token required: it is in "
                                                              f"$VOLTTRON_HOME/{TOKEN_FILE} (see ven_control.sh status)"})
        op = data.get("op")
        handlers: dict[str, Callable[[], dict[str, Any]]] = {
            Op.EVENT.value: lambda: self._host.send_event(
                data["shed_kw"], data["duration_sec"], event_id=data.get("event_id") or None),
            Op.RESTORE.value: self._host.restore,
        }
        if op not in handlers:
            return _response("400 Bad Request", {"detail": "op must be 'event' or 'restore'"})
        if op == Op.EVENT.value and not all(
                isinstance(data.get(k), (int, float)) and not isinstance(data.get(k), bool) for k in ("shed_kw", "duration_sec")):
            return _response("400 Bad Request", {"detail": "shed_kw and duration_sec must be numbers"})
        ack = handlers[op]()
        _log.info("web %s from %s: %s", op, env.get("REMOTE_ADDR"), ack.get("status"))
        return _response("200 OK", {"ack": ack})
