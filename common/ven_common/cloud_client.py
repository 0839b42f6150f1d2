"""The backend's side of the broker for the operator scripts: one small paho client.

``ven_cmd_publish.py``, ``ven_shadow.py`` and ``ven_telemetry_listen.py`` act as the seed's
backend does: they hold the ``cloud_backend`` certificate, publish on ``ven/cmd/{thing}`` and
read ``ven/ack/{thing}`` and ``volttron/metering``. This module owns the connection (mTLS,
TCP_NODELAY, clear one-line errors) and the exit codes the scripts share; it never imports
volttron (no gevent patching), so it is safe in any process.

Exit codes: 0 ok, 1 failure, 2 usage, 4 broker/cloud unreachable or no answer in time.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ven_common.contract import BACKEND_IDENTITY, DEFAULT_THING_NAME, MqttTopics

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4

# scripts/ and common/ven_common/ live in the same checkout: ../../certs is the dev PKI.
REPO_CERTS = Path(__file__).resolve().parents[2] / "certs"
START_HINT = "./scripts/ven_control.sh start"


class CliError(Exception):
    """A problem for the operator: one line, an exit code, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CloudSettings:
    endpoint: str
    port: int
    certs: Path
    cert_name: str
    ca_name: str
    thing: str
    connect_timeout: float

    @property
    def topics(self) -> MqttTopics:
        return MqttTopics(self.thing)

    @property
    def where(self) -> str:
        return f"{self.endpoint}:{self.port}"


def _default_port() -> int:
    raw = os.environ.get("IOT_PORT") or os.environ.get("BROKER_PORT") or "8883"
    try:
        return int(raw)
    except ValueError:
        return 8883


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The options every backend-side script takes, with defaults from the environment."""
    g = parser.add_argument_group("broker connection (the backend's identity)")
    g.add_argument("--endpoint", default=os.environ.get("IOT_ENDPOINT") or "localhost",
                   help="broker host (default: IOT_ENDPOINT, else localhost)")
    g.add_argument("--port", type=int, default=_default_port(),
                   help="broker port (default: IOT_PORT, else BROKER_PORT, else 8883)")
    g.add_argument("--certs", type=Path, default=Path(os.environ.get("VEN_CLOUD_CERTS") or REPO_CERTS),
                   help="folder with ca.pem and the backend's certificate (default: VEN_CLOUD_CERTS, "
                        "else the checkout's certs/)")
    g.add_argument("--cert-name", default=os.environ.get("VEN_CLOUD_CERT_NAME") or BACKEND_IDENTITY,
                   help="certificate and key base name in --certs (default: cloud_backend)")
    g.add_argument("--ca-name", default="ca.pem", help="CA file name in --certs (default: ca.pem)")
    g.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the broker")


def add_thing_arg(parser: argparse.ArgumentParser, flag: str = "--ven-id") -> None:
    parser.add_argument(flag, dest="ven_id", default=os.environ.get("IOT_THING_NAME") or DEFAULT_THING_NAME,
                        help="the VEN's thing name (default: IOT_THING_NAME, else volttron_thing)")


def settings_from_args(args: argparse.Namespace) -> CloudSettings:
    return CloudSettings(endpoint=args.endpoint, port=args.port, certs=Path(args.certs), cert_name=args.cert_name,
                         ca_name=args.ca_name, thing=args.ven_id, connect_timeout=args.connect_timeout)


def new_correlation_id(prefix: str = "corr") -> str:
    return f"{prefix}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"


def _check_files(s: CloudSettings) -> tuple[Path, Path, Path]:
    ca, cert, key = s.certs / s.ca_name, s.certs / f"{s.cert_name}.crt", s.certs / f"{s.cert_name}.key"
    for path in (ca, cert, key):
        if not path.is_file():
            raise CliError(f"certificate file {path} is missing: run {START_HINT} (it creates the dev PKI), "
                           f"or pass --certs DIR / set VEN_CLOUD_CERTS to the folder holding it")
        if not os.access(path, os.R_OK):
            raise CliError(f"certificate file {path} is not readable by this user: run as root or as its owner")
    return ca, cert, key


def no_delay(client: Any, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: small messages leave at once (no Nagle delay)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CloudClient:
    """A connected paho 2.x client; ``with CloudClient(settings) as c: ...``."""

    def __init__(self, settings: CloudSettings) -> None:
        self.s = settings
        self._connected = threading.Event()
        self._connect_rc: Any = None
        self._subscribed: dict[int, threading.Event] = {}
        self._handlers: list[tuple[str, Callable[[str, bytes], None]]] = []
        self._lock = threading.Lock()
        self._client: Any = None

    # connection --------------------------------------------------------------------
    def __enter__(self) -> CloudClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        import paho.mqtt.client as mqtt  # late: --help and usage errors stay fast
        from paho.mqtt.enums import CallbackAPIVersion

        ca, cert, key = _check_files(self.s)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.s.cert_name}-op-{uuid.uuid4().hex[:8]}",
                             clean_session=True, protocol=mqtt.MQTTv311)
        try:
            client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError) as exc:
            raise CliError(f"cannot load the certificate {cert} / key {key}: {exc}; regenerate them with {START_HINT}") from None
        client.on_socket_open = no_delay
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.connect_timeout = self.s.connect_timeout
        unreachable = (f"broker {self.s.where} is unreachable", EXIT_UNREACHABLE)
        hint = (f"is the VEN's broker running ({START_HINT}; check BROKER_PORT/--port)" if not os.environ.get("IOT_ENDPOINT")
                else "check IOT_ENDPOINT/--endpoint and the network")
        try:
            client.connect(self.s.endpoint, self.s.port, keepalive=30)
        except ssl.SSLCertVerificationError as exc:
            raise CliError(f"TLS to {self.s.where} failed, the broker's certificate is not trusted by {ca}: "
                           f"{exc.verify_message}; use the CA that signed the broker (--certs/--ca-name)") from None
        except ssl.SSLError as exc:
            raise CliError(f"{unreachable[0]}: TLS handshake failed ({exc.reason or exc}); the broker may have refused "
                           f"the certificate {cert}", EXIT_UNREACHABLE) from None
        except TimeoutError:
            raise CliError(f"{unreachable[0]}: no answer in {self.s.connect_timeout:g} s; {hint}", EXIT_UNREACHABLE) from None
        except OSError as exc:
            raise CliError(f"{unreachable[0]}: {exc.strerror or exc}; {hint}", EXIT_UNREACHABLE) from None
        self._client = client
        client.loop_start()
        if not self._connected.wait(self.s.connect_timeout):
            self.close()
            raise CliError(f"{unreachable[0]}: no CONNACK in {self.s.connect_timeout:g} s "
                           f"(the broker may have refused the certificate {cert})", EXIT_UNREACHABLE)
        rc = self._connect_rc
        if rc is not None and getattr(rc, "is_failure", False):
            self.close()
            raise CliError(f"broker {self.s.where} refused the connection as '{self.s.cert_name}': {rc}")

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client.loop_stop()
            self._client = None

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._connect_rc = rc
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any = None) -> None:
        with self._lock:
            ev = self._subscribed.setdefault(mid, threading.Event())
        ev.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        import paho.mqtt.client as mqtt

        for pattern, handler in list(self._handlers):
            if mqtt.topic_matches_sub(pattern, msg.topic):
                handler(msg.topic, bytes(msg.payload))

    # operations --------------------------------------------------------------------
    def subscribe(self, topic: str, handler: Callable[[str, bytes], None], timeout: float = 10.0) -> None:
        """Subscribe and wait for the SUBACK, so nothing published afterwards is missed."""
        self._handlers.append((topic, handler))
        result, mid = self._client.subscribe(topic, qos=1)
        if result != 0:
            raise CliError(f"subscribe to {topic} failed (paho rc {result})", EXIT_UNREACHABLE)
        with self._lock:
            ev = self._subscribed.setdefault(mid, threading.Event())
        if not ev.wait(timeout):
            raise CliError(f"broker {self.s.where} did not confirm the subscription to {topic} in {timeout:g} s",
                           EXIT_UNREACHABLE)

    def publish(self, topic: str, payload: Any, timeout: float = 10.0) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        info = self._client.publish(topic, data, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (ValueError, RuntimeError) as exc:
            raise CliError(f"publish to {topic} failed: {exc}", EXIT_UNREACHABLE) from None
        if not info.is_published():
            raise CliError(f"broker {self.s.where} did not acknowledge the publish to {topic} in {timeout:g} s",
                           EXIT_UNREACHABLE)

    def request(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Publish a command on the thing's command topic and return its ack (by correlationId)."""
        cid = command["correlationId"]
        box: queue.Queue[dict[str, Any]] = queue.Queue()

        def on_ack(topic: str, payload: bytes) -> None:
            try:
                doc = json.loads(payload)
            except ValueError:
                return
            if isinstance(doc, dict) and doc.get("correlationId") == cid and doc.get("type") != "event_report":
                box.put(doc)

        self.subscribe(self.s.topics.ack, on_ack)
        self.publish(self.s.topics.cmd, command)
        try:
            return box.get(timeout=timeout)
        except queue.Empty:
            raise CliError(f"no ack from VEN '{self.s.thing}' within {timeout:g} s (command {cid} was delivered to "
                           f"the broker): is the VEN running? check ./scripts/ven_control.sh status", EXIT_UNREACHABLE) from None

    def shadow_get(self, timeout: float) -> dict[str, Any]:
        """The thing's classic shadow from the Device Shadow service (AWS IoT's, or the local
        stand-in): ``get`` with a clientToken, answered on ``get/accepted`` or ``get/rejected``."""
        token = new_correlation_id("shadow-get")
        box: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        topics = self.s.topics

        def on_answer(topic: str, payload: bytes) -> None:
            try:
                doc = json.loads(payload)
            except ValueError:
                return
            if isinstance(doc, dict) and doc.get("clientToken") == token:
                box.put((topic, doc))

        self.subscribe(topics.shadow_get_accepted, on_answer)
        self.subscribe(f"{topics.shadow_get}/rejected", on_answer)
        self.publish(topics.shadow_get, {"clientToken": token})
        try:
            topic, doc = box.get(timeout=timeout)
        except queue.Empty:
            raise CliError(f"no answer from the Device Shadow service within {timeout:g} s: is it running? "
                           "check ./scripts/ven_control.sh status (or use --from-ven)", EXIT_UNREACHABLE) from None
        if topic.endswith("/rejected"):
            raise CliError(f"the shadow service refused: {doc.get('code')} {doc.get('message')} "
                           "(the VEN's bridge writes the shadow once it is connected)")
        return doc

    def stream(self, topic: str, idle_timeout: float | None) -> Iterator[tuple[str, bytes]]:
        """Yield (topic, payload) as they arrive; CliError(4) after ``idle_timeout`` s of silence."""
        box: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribe(topic, lambda t, p: box.put((t, p)))
        while True:
            try:
                yield box.get(timeout=idle_timeout)
            except queue.Empty:
                raise CliError(f"nothing on {topic} for {idle_timeout:g} s: is the VEN running and connected? "
                               f"check ./scripts/ven_control.sh status", EXIT_UNREACHABLE) from None


def local_call(peer: str, method: str, *args: Any, timeout: float = 15.0) -> Any:
    """The ``--local`` path: one VIP RPC on the running platform instead of MQTT.

    Imports volttron (which patches the process with gevent) only here, only when asked.
    """
    try:
        from ven_common import vip_client
    except ImportError as exc:
        raise CliError(f"--local needs the platform venv ({exc}): run it through ./scripts/ven_control.sh") from None
    try:
        return vip_client.call_once(peer, method, *args, timeout=timeout)
    except vip_client.VipClientError as exc:
        raise CliError(str(exc)) from None


def run_cli(main: Callable[[], int]) -> None:
    """Run a script's main: CliError and Ctrl-C become one line and an exit code, never a traceback."""
    try:
        code = main()
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        code = EXIT_OK
    except BrokenPipeError:  # e.g. piped into head
        code = EXIT_OK
    sys.exit(code)


def print_json(doc: Any, compact: bool = False) -> None:
    print(json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc, indent=2), flush=True)
