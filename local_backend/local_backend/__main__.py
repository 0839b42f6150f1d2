"""The local backend stand-in: its own process (not a VOLTTRON agent), as the seed's backend.

    python -m local_backend --db backend.sqlite --port 8000 --mqtt-port 8883 --certs certs/

HTTP (FastAPI on uvicorn) for registration and events; an MQTT client holding the
``cloud_backend`` certificate ingests ``volttron/metering``, ``ven/ack/+`` and ``ven/telemetry/+``
as the IoT rule + consumer do; the EventCommandService loop dispatches active events every 5 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from ven_common.cloud_client import no_delay

from local_backend import dispatch, ingest, missing_certificate
from local_backend.api import create_app
from local_backend.store import Store

_log = logging.getLogger("local_backend")


class Consumer:
    """The backend's MQTT side: a persistent session (nothing is lost while it restarts)."""

    def __init__(self, store: Store, host: str, port: int, certs: Path, client_id: str = "cloud_backend-local") -> None:
        self.store = store
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "cloud_backend.crt"),
                            keyfile=str(certs / "cloud_backend.key"), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_socket_open = no_delay
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p=None: self.connected.clear()
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            _log.error("MQTT connect refused: %s", rc)
            return
        client.subscribe([(topic, 1) for topic in ingest.SUBSCRIPTIONS])
        self.connected.set()
        _log.info("MQTT connected to %s:%d as cloud_backend", self.host, self.port)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            ingest.handle(self.store, msg.topic, bytes(msg.payload), time.time())
        except Exception:  # noqa: BLE001 - one bad message must not stop the consumer
            _log.exception("cannot store a message on %s", msg.topic)

    def publish(self, topic: str, command: dict[str, Any]) -> bool:
        if not self.connected.is_set():
            return False
        info = self.client.publish(topic, json.dumps(command), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()


def _dispatch_loop(store: Store, consumer: Consumer, fresh_sec: float, stop: threading.Event) -> None:
    while not stop.wait(dispatch.INTERVAL_SEC):
        try:
            sent = dispatch.run_once(store, time.time(), consumer.publish, fresh_sec)
            if sent:
                _log.info("EventCommandService: %d command(s) published", sent)
        except Exception:  # noqa: BLE001 - the loop must outlive any single failure
            _log.exception("EventCommandService round failed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local_backend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True, help="SQLite file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--mqtt-host", default="localhost")
    p.add_argument("--mqtt-port", type=int, default=8883)
    p.add_argument("--certs", type=Path, required=True, help="folder with ca.pem and cloud_backend.crt/.key")
    p.add_argument("--online-within", type=float, default=30.0,
                   help="a VEN is online while its last message is at most this old (s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if missing_certificate(args.certs, "cloud_backend", "local_backend"):
        return 1
    store = Store(args.db)
    consumer = Consumer(store, args.mqtt_host, args.mqtt_port, args.certs)
    consumer.start()
    stop = threading.Event()
    threading.Thread(target=_dispatch_loop, args=(store, consumer, args.online_within, stop), daemon=True,
                     name="event-command-service").start()
    app = create_app(store, mqtt_connected=consumer.connected.is_set, fresh_sec=args.online_within)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except OSError as exc:
        print(f"local_backend: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        consumer.client.loop_stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
