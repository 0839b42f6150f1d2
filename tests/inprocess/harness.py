"""Fixtures of the in-process tier (imported by conftest.py in the child run only).

volttrontesting 0.5.1rc4 with volttron-core 2.0.0rc38, what it gives and what it lacks:

* ``TestServer`` + ``MockCore`` (``name="mock"``): agents are built for real (config store
  subsystem, RPC subsystem, lifecycle receivers); ``connect_agent`` routes ``vip.pubsub`` through
  an in-memory pubsub, synchronously, so one agent's publish reaches the other's subscription.
* ``MockCore`` has no ``onstop`` signal (``WebSubSystem``, which VenAgent builds in ``__init__``,
  connects to it) and no ``periodic``: both are added here (periodics are recorded, a test calls
  them). ``PubSubWrapper.__wrapper__`` is a class attribute set once per process: a second
  ``TestServer`` would publish into the first one's memory bus, so it is reset per test.
* There is no RPC between mock agents (``MockConnection`` delivers nothing): ``vip.rpc.call`` is
  replaced by :class:`Router`, which calls the peer's exported method as a plain method and the
  fake driver for ``platform.driver``. The config store RPCs (``vip.config.set``) likewise go to
  the agent's own config callback.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import volttron.client.decorators as decorators
import volttrontesting.mock_core_builder  # noqa: F401 - registers the "mock" core builder
from gevent.event import AsyncResult
from volttron.client.vip.agent.dispatch import Signal
from volttron.types.auth.auth_credentials import Credentials
from volttrontesting.mock_core import MockCore
from volttrontesting.server_mock import PubSubWrapper, TestServer

from ven_common.contract import BRIDGE_IDENTITY, DRIVER_IDENTITY, VEN_IDENTITY

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
DEVICE = "campus/building/sim"


def _onstop(core: MockCore) -> Signal:
    if not hasattr(core, "_onstop_signal"):
        core._onstop_signal = Signal()
    return core._onstop_signal


def _periodic(core: MockCore, period: float, func: Callable[[], None], wait: float | None = None) -> None:
    core.__dict__.setdefault("periodics", []).append((period, func))


MockCore.onstop = property(_onstop)
MockCore.periodic = _periodic


class FakeDriver:
    """``platform.driver`` for one device: points, ``set``, ``last``, and the ``/all`` publish."""

    def __init__(self, points: dict[str, Any], rated: dict[str, float]) -> None:
        self.points = dict(points)
        self.rated = rated
        self.sets: list[tuple[bool, list[str]]] = []
        self.refuse: set[str] = set()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "set":
            value, topics = args[0], kwargs["topic"]
            self.sets.append((value, list(topics)))
            errors = {}
            for topic in topics:
                point = topic.rsplit("/", 1)[-1]
                if point in self.refuse:
                    errors[topic] = "device down"
                else:
                    self.points[point] = value
                    # the simulated circuit draws its rated power when on
                    kw_point = point.replace("_enabled", "_kw")
                    self.points[kw_point] = self.rated.get(kw_point, 0.0) if value else 0.0
            self.points["Building_kw"] = round(sum(v for k, v in self.points.items()
                                                   if k.endswith("_kw") and k != "Building_kw"), 3)
            return [{}, errors]
        if method == "last":
            now = dt.datetime.now(dt.UTC).isoformat()
            if kwargs.get("value", True):
                return {f"devices/{DEVICE}/{p}": {"value": v, "updated": now} for p, v in self.points.items()}
            return {f"devices/{DEVICE}/{p}": now for p in self.points}
        if method == "get":   # the VEN's read-back after a switch
            topics = kwargs["topic"]
            return [{t: self.points[t.rsplit("/", 1)[-1]] for t in topics if t.rsplit("/", 1)[-1] in self.points}, {}]
        raise AssertionError(f"unexpected driver call {method}")

    def publish_all(self, server: TestServer) -> None:
        server.publish(f"devices/{DEVICE}/all", headers={"sender": DRIVER_IDENTITY}, message=[dict(self.points), {}])


class Router:
    """``vip.rpc.call`` for the agents on one TestServer: peers' exports as plain methods."""

    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver
        self.agents: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []

    def bind(self, agent: Any) -> None:
        self.agents[agent.core.identity] = agent

        def call(peer: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
            self.calls.append((peer, method))
            result = AsyncResult()
            try:
                if peer == DRIVER_IDENTITY:
                    result.set(self.driver.call(method, *args, **kwargs))
                else:
                    result.set(getattr(self.agents[peer], method)(*args, **kwargs))
            except Exception as exc:
                result.set_exception(exc)
            return result

        agent.vip.rpc.call = call


def ven_config(**changes: Any) -> dict[str, Any]:
    config = json.loads((REPO / "config" / "ven-agent.json").read_text())
    config.update({"restore_jitter_sec": 0.0, **changes})
    return config


def bridge_config() -> dict[str, Any]:
    config = json.loads((REPO / "config" / "bridge.json").read_text())
    config.update({"shadow_debounce_sec": 0.01, "registration_enabled": False})
    return config


@pytest.fixture(autouse=True)
def fresh_volttron(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """One core builder per process is cached by volttron.client: every test starts without one."""
    decorators.__core_builder__ = None
    PubSubWrapper.__wrapper__ = None
    for name in ("IOT_THING_NAME", "IOT_ENDPOINT", "IOT_PORT", "BACKEND_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path / "vhome"))
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path / "bridge-data"))
    yield
    decorators.__core_builder__ = None
    PubSubWrapper.__wrapper__ = None


@pytest.fixture
def server() -> TestServer:
    return TestServer()


@pytest.fixture
def driver() -> FakeDriver:
    config = ven_config()
    points: dict[str, Any] = {}
    rated: dict[str, float] = {}
    for c in config["circuits"]:
        points[c["enable_point"]] = c["name"] != "EV Charger"
        rated[c["power_point"]] = c["rated_kw"]
        points[c["power_point"]] = c["rated_kw"] if points[c["enable_point"]] else 0.0
    points["Building_kw"] = round(sum(v for k, v in points.items() if k.endswith("_kw")), 3)
    return FakeDriver(points, rated)


@pytest.fixture
def router(driver: FakeDriver) -> Router:
    return Router(driver)


def _config_store(agent: Any) -> None:
    """``vip.config.set`` as the platform's config store would answer it: the agent's callback."""
    def store(name: str, contents: Any, trigger_callback: bool = False, send_update: bool = True) -> None:
        if trigger_callback:
            agent._configure(name, "UPDATE", contents)

    agent.vip.config.set = store


@pytest.fixture
def ven(server: TestServer, router: Router) -> Any:
    from venagent.agent import VenAgent

    agent = VenAgent(config_path=None, credentials=Credentials(identity=VEN_IDENTITY), name="mock")
    server.connect_agent(agent)
    router.bind(agent)
    agent.vip.rpc.get_protected_rpcs = lambda: ["handle_command", "send_event", "restore", "set_override",
                                                "apply_shadow_config"]
    _config_store(agent)
    server.trigger_start_event(agent)
    agent._configure("config", "NEW", ven_config())
    gevent.sleep(0)  # the resume greenlet
    return agent


@pytest.fixture
def bridge(server: TestServer, router: Router, ven: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from backendbridge import mqtt_link
    from backendbridge.agent import BackendBridgeAgent

    def no_broker(self: Any) -> None:
        raise mqtt_link.CertificateError(["in-process test: no broker"])

    monkeypatch.setattr(mqtt_link.CloudLink, "start", no_broker)
    agent = BackendBridgeAgent(config_path=None, credentials=Credentials(identity=BRIDGE_IDENTITY), name="mock")
    server.connect_agent(agent)
    router.bind(agent)
    server.trigger_start_event(agent)
    agent._configure("config", "NEW", bridge_config())
    gevent.sleep(0)
    yield agent
    agent._stop_runtime()


def wait_for(predicate: Callable[[], Any], timeout: float = 2.0) -> Any:
    """Let the agents' greenlets run until ``predicate()`` is true (its value; TimeoutError after ``timeout``)."""
    return wait_until(predicate, timeout, 0.005, "the agents' greenlets", sleep=gevent.sleep)


def published(server: TestServer, topic: str) -> list[Any]:
    return [m for m in server.get_published_messages() if m.topic == topic]
