"""CloudLink (+ outbox + drainer) against a real mosquitto with mutual TLS. No VOLTTRON.

Each test gets its own broker on a free port (some tests kill it); the PKI is shared.
The drainer runs in one consumer thread fed by a queue handoff, the same shape as the
agent's hub greenlets fed by GeventHandoff.
"""

from __future__ import annotations

import functools
import json
import queue
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ven_common.contract import MqttTopics
from ven_common.pki import PkiPaths, generate_dev_pki

from backendbridge.drain import Drainer
from backendbridge.errors import CertificateError
from backendbridge.mqtt_link import CloudLink, LinkSettings
from backendbridge.outbox import Outbox
from tests.support.backend import Backend
from tests.support.broker import LocalBroker
from tests.support.waiting import wait_until as shared_wait_until

pytestmark = pytest.mark.broker

THING = "volttron_thing"
TOPICS = MqttTopics(THING)
REPO = Path(__file__).resolve().parents[2]


wait_until = functools.partial(shared_wait_until, interval=0.01)  # this file polls in-process state, fast


class Recorder:
    """A LinkListener that records everything (thread-safe, used with direct handoff)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.connect_count = 0
        self.session_present: list[bool] = []
        self.commands: queue.Queue[tuple[bytes, bool]] = queue.Queue()
        self.pubacks: set[int] = set()
        self.disconnects: list[str] = []
        self.deltas: list[dict[str, Any]] = []

    def on_command(self, payload: bytes, dup: bool, done: Callable[[], None] | None = None) -> None:
        self.commands.put((payload, dup))
        if done is not None:
            done()

    def on_shadow_delta(self, doc: dict[str, Any]) -> None:
        self.deltas.append(doc)

    def on_shadow_rejected(self, doc: dict[str, Any]) -> None:
        pass

    def on_shadow_get_accepted(self, doc: dict[str, Any]) -> None:
        pass

    def on_connected(self, session_present: bool) -> None:
        with self.lock:
            self.connect_count += 1
            self.session_present.append(session_present)
        self.connected.set()

    def on_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)
        self.connected.clear()

    def on_puback(self, token: int) -> None:
        with self.lock:
            self.pubacks.add(token)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return generate_dev_pki(tmp_path_factory.mktemp("link-pki"), THING)


@pytest.fixture()
def broker(tmp_path: Path, pki: PkiPaths) -> Iterator[LocalBroker]:
    b = LocalBroker(tmp_path, pki_dir=pki.root, thing=THING).start()
    yield b
    b.kill()


@pytest.fixture()
def spy(broker: LocalBroker, pki: PkiPaths) -> Iterator[Backend]:
    """The cloud side (CN=cloud_backend): persistent session, back within 0.5 s of a broker restart."""
    s = Backend(pki.root, broker.port, persistent=True, reconnect=(0.1, 0.5)).start()
    yield s
    s.stop()


def settings(pki: PkiPaths, port: int, cert: Path | None = None, key: Path | None = None) -> LinkSettings:
    return LinkSettings(
        thing=THING,
        endpoint="localhost",
        port=port,
        ca=pki.ca,
        cert=cert or pki.client_cert,
        key=key or pki.client_key,
        topics=TOPICS,
        keepalive=30,
        reconnect_min=0.1,
        reconnect_max=0.5,
        stable_after=30,
        max_inflight=100,
    )


@pytest.fixture()
def link(broker: LocalBroker, pki: PkiPaths) -> Iterator[tuple[CloudLink, Recorder]]:
    rec = Recorder()
    lk = CloudLink(settings(pki, broker.port), rec, rng=random.Random(1))
    lk.start()
    assert rec.connected.wait(10), lk.last_error
    yield lk, rec
    lk.stop(timeout=1.0)


def test_connect_command_in_ack_out(link: tuple[CloudLink, Recorder], spy: Backend) -> None:
    lk, rec = link
    assert lk.connected and rec.session_present == [False]
    cmd = {"op": "restore", "correlationId": "c-1", "venId": THING}
    spy.publish(TOPICS.cmd, json.dumps(cmd).encode())
    payload, dup = rec.commands.get(timeout=10)
    assert json.loads(payload) == cmd and dup is False
    ack = {"op": "restore", "status": "accepted", "correlationId": "c-1"}
    assert lk.publish(TOPICS.ack, json.dumps(ack).encode(), 1, token=42)
    assert spy.wait_json(TOPICS.ack) == ack
    wait_until(lambda: 42 in rec.pubacks, what="PUBACK")


def test_resubscribes_when_the_broker_lost_the_session(
    link: tuple[CloudLink, Recorder], spy: Backend, broker: LocalBroker
) -> None:
    lk, rec = link
    broker.stop()
    for f in (broker.dir / "data").iterdir():
        f.unlink()  # forget every session: only an explicit resubscribe brings commands back
    broker.start()
    wait_until(lambda: rec.connect_count >= 2, what="reconnect")
    assert rec.session_present[-1] is False
    assert spy.subscribed.wait(10)
    spy.publish(TOPICS.cmd, b'{"op":"status","correlationId":"after-restart"}')
    payload, _ = rec.commands.get(timeout=10)
    assert json.loads(payload)["correlationId"] == "after-restart"
    assert lk.reconnects >= 1 and rec.disconnects


def test_oversize_refused_before_publishing(link: tuple[CloudLink, Recorder], spy: Backend) -> None:
    lk, rec = link
    assert not lk.publish(TOPICS.telemetry, b"x" * (128 * 1024 + 1), 1, token=1)
    assert not lk.publish("ven/telemetry/+", b"{}", 1, token=2)
    assert lk.publish(TOPICS.telemetry, b'{"small":true}', 1, token=3)
    spy.wait_json(TOPICS.telemetry, lambda d: d.get("small") is True)
    assert not any(len(p) > 1000 for p in [m.payload for m in spy.on_topic(TOPICS.telemetry)])
    wait_until(lambda: 3 in rec.pubacks)
    assert rec.pubacks == {3} and lk.connected


def test_rogue_ca_client_certificate_is_refused(broker: LocalBroker, pki: PkiPaths) -> None:
    rec = Recorder()
    lk = CloudLink(settings(pki, broker.port, pki.rogue_cert, pki.rogue_key), rec, rng=random.Random(2))
    lk.start()  # CN matches and the files are fine: only the broker can tell
    try:
        wait_until(lambda: lk.connect_failures >= 2, what="refused connects")
        assert not rec.connected.is_set() and not lk.connected
        assert lk.last_error and ("SSL" in lk.last_error or "Connection" in lk.last_error or "Errno" in lk.last_error)
    finally:
        lk.stop(timeout=0.1)


def test_bad_certificates_are_refused_at_start(tmp_path: Path, pki: PkiPaths) -> None:
    lk = CloudLink(settings(pki, 1, cert=tmp_path / "missing.crt"), Recorder())
    with pytest.raises(CertificateError, match="not found"):
        lk.start()
    wrong = CloudLink(settings(pki, 1, cert=pki.other_cert, key=pki.other_key), Recorder())
    with pytest.raises(CertificateError, match="does not match the thing name"):
        wrong.start()


def test_goodbye_on_stop_and_will_on_crash(broker: LocalBroker, pki: PkiPaths, spy: Backend) -> None:
    rec = Recorder()
    lk = CloudLink(settings(pki, broker.port), rec)
    lk.start()
    assert rec.connected.wait(10)
    lk.stop()
    doc = spy.wait_json(TOPICS.telemetry, lambda d: d.get("online") is False)
    assert doc == {"venId": THING, "online": False, "reason": "shutdown"}

    script = textwrap.dedent(
        f"""
        import sys, threading, time
        sys.path[:0] = {[str(REPO / "BackendBridgeAgent"), str(REPO)]!r}
        from pathlib import Path
        from backendbridge.mqtt_link import CloudLink, LinkSettings
        from ven_common.contract import MqttTopics
        class L:
            def __init__(self): self.up = threading.Event()
            def on_connected(self, sp): self.up.set()
            def __getattr__(self, name): return lambda *a: None
        l = L()
        s = LinkSettings(thing="{THING}", endpoint="localhost", port={broker.port}, ca=Path("{pki.ca}"),
                         cert=Path("{pki.client_cert}"), key=Path("{pki.client_key}"), topics=MqttTopics("{THING}"))
        CloudLink(s, l).start()
        assert l.up.wait(30), "never connected"
        print("up", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        proc.kill()
        will = spy.wait_json(TOPICS.telemetry, lambda d: d.get("reason") == "connection_lost")
        assert will == {"venId": THING, "online": False, "reason": "connection_lost"}
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


class Consumer:
    """One thread owns the drainer; link callbacks are queued to it (like the agent's hub)."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Callable[[], None]] = queue.Queue()
        self.drainer: Drainer | None = None
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def handoff(self, fn: Callable[[], None]) -> None:
        self.calls.put(fn)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.calls.get(timeout=0.02)()
                while True:
                    self.calls.get_nowait()()
            except queue.Empty:
                pass
            if self.drainer is not None:
                self.drainer.pump()


class DrainListener(Recorder):
    def __init__(self, consumer: Consumer) -> None:
        super().__init__()
        self.consumer = consumer

    def on_puback(self, token: int) -> None:
        super().on_puback(token)
        assert self.consumer.drainer is not None
        self.consumer.drainer.on_puback(token)


def _seqs_received(spy: Backend) -> list[int]:
    seqs: list[int] = []
    for payload in [m.payload for m in spy.on_topic("volttron/metering")]:
        doc = json.loads(payload)
        seqs.extend(doc["seqs"] if doc.get("batch") else [doc["seq"]])
    return seqs


def test_outbox_survives_broker_sigkill_with_zero_loss(
    tmp_path: Path, broker: LocalBroker, pki: PkiPaths, spy: Backend
) -> None:
    # The spy's persistent session must be on disk before the SIGKILL (autosave is 1 s).
    db = broker.dir / "data" / "mosquitto.db"
    subscribed_at = time.time()
    wait_until(lambda: db.exists() and db.stat().st_mtime >= subscribed_at, what="broker autosave")

    consumer = Consumer()
    rec = DrainListener(consumer)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    lk = CloudLink(settings(pki, broker.port), rec, handoff=consumer.handoff, rng=random.Random(3))
    consumer.drainer = Drainer(
        outbox, lk, ven_id=THING, batch_max_readings=50, max_inflight=100, max_publish_per_sec=100.0
    )
    consumer.thread.start()
    lk.start()
    try:
        assert rec.connected.wait(10)
        total = 0
        for i in range(300):
            outbox.enqueue("metering", "volttron/metering", {"i": i, "power_kw": 1.0})
            total += 1
            if i == 150:
                broker.kill()
        wait_until(lambda: not lk.connected, what="link noticed the outage")
        for i in range(300, 500):  # enqueued while offline: only the outbox holds them
            outbox.enqueue("metering", "volttron/metering", {"i": i, "power_kw": 1.0})
            total += 1
        assert outbox.depth() > 0
        broker.start()
        wait_until(lambda: outbox.depth() == 0, timeout=30, what="outbox drained")
        wait_until(lambda: len(set(_seqs_received(spy))) == total, timeout=30, what="all readings at the spy")
        seqs = _seqs_received(spy)
        assert sorted(set(seqs)) == list(range(1, total + 1))
        assert consumer.drainer.inflight == 0
        # At-least-once: a resend after the kill may duplicate, never lose; only what the broker
        # could have had before the kill (seq <= 151) may come twice.
        duplicated = {q for q in seqs if seqs.count(q) > 1}
        assert all(q <= 151 for q in duplicated), sorted(duplicated)
    finally:
        consumer.stop_flag.set()
        consumer.thread.join(5)
        lk.stop(timeout=0.5)
        outbox.close()


_GEVENT_SCRIPT = """
import sys, json, random
sys.path[:0] = {paths!r}
import volttron.client  # patches socket/ssl/os exactly as in an agent process
from gevent import monkey
assert monkey.is_module_patched("socket") and not monkey.is_module_patched("threading")
import gevent, gevent.event
from pathlib import Path
from backendbridge.gevent_link import GeventHandoff
from backendbridge.mqtt_link import CloudLink, LinkSettings
from ven_common.contract import MqttTopics

topics = MqttTopics("{thing}")
up, acked, got = gevent.event.Event(), gevent.event.Event(), []

class L:
    def on_connected(self, sp): up.set()
    def on_command(self, payload, dup, done):
        # We are in a greenlet of the hub here: gevent primitives (and vip) are allowed.
        gevent.sleep(0)
        done()
        got.append(json.loads(payload))
        link.publish(topics.ack, json.dumps({{"correlationId": got[-1]["correlationId"]}}).encode(), 1, 7)
    def on_puback(self, token):
        if token == 7: acked.set()
    def __getattr__(self, name): return lambda *a: None

s = LinkSettings(thing="{thing}", endpoint="localhost", port={port}, ca=Path("{ca}"), cert=Path("{cert}"),
                 key=Path("{key}"), topics=topics, reconnect_min=0.1, reconnect_max=0.5)
link = CloudLink(s, L(), handoff=GeventHandoff(), rng=random.Random(0))
import time
max_gap = [0.0]
def ticker():
    last = time.monotonic()
    while True:
        gevent.sleep(0.01)
        now = time.monotonic()
        max_gap[0] = max(max_gap[0], now - last)
        last = now
gevent.spawn(ticker)
link.start()
assert up.wait(10), link.last_error
print("up", flush=True)
assert acked.wait(10), "no ack"
link.stop(sleep=gevent.sleep)
# The hub kept running while paho's thread did the network work.
# A blocked hub stalls for network timeouts (seconds); 1 s leaves room for a loaded CI machine.
print("ok", got[0]["correlationId"], max_gap[0] < 1.0, flush=True)
"""


def test_link_inside_a_volttron_style_gevent_process(broker: LocalBroker, pki: PkiPaths, spy: Backend) -> None:
    script = _GEVENT_SCRIPT.format(
        paths=[str(REPO / "BackendBridgeAgent"), str(REPO)], thing=THING, port=broker.port,
        ca=pki.ca, cert=pki.client_cert, key=pki.client_key,
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "up", proc.stderr.read() if proc.stderr else ""
        spy.publish(TOPICS.cmd, b'{"op":"status","correlationId":"gevent-1"}')
        assert spy.wait_json(TOPICS.ack) == {"correlationId": "gevent-1"}
        out, err = proc.communicate(timeout=20)
        assert out.strip() == "ok gevent-1 True", err
    finally:
        proc.kill()
        proc.wait()


def test_a_command_not_yet_answered_is_redelivered_after_a_crash(broker: LocalBroker, pki: PkiPaths,
                                                                  spy: Backend) -> None:
    """Manual PUBACK: a bridge that dies before the VEN answered gets the command again."""

    class Forgetful(Recorder):
        def on_command(self, payload: bytes, dup: bool, done: Callable[[], None] | None = None) -> None:
            self.commands.put((payload, dup))  # dies before answering: never calls done()

    first = Forgetful()
    crashed = CloudLink(settings(pki, broker.port), first, rng=random.Random(1))
    crashed.start()
    assert first.connected.wait(10), crashed.last_error
    cid = uuid.uuid4().hex
    spy.publish(TOPICS.cmd, json.dumps({"op": "status", "correlationId": cid}).encode())
    payload, _ = first.commands.get(timeout=10)
    assert cid.encode() in payload
    client = crashed._client
    assert client is not None
    client.loop_stop()
    client.socket().close()

    second = Recorder()
    again = CloudLink(settings(pki, broker.port), second, rng=random.Random(2))
    again.start()
    try:
        assert second.connected.wait(10), again.last_error
        payload, dup = second.commands.get(timeout=15)
        assert cid.encode() in payload and dup
    finally:
        again.stop(timeout=1.0)
