"""The Device Shadow service stand-in beside the local broker (mosquitto has none): its own
process, an MQTT client with the ``shadow_service`` identity, the rules in :mod:`shadow_book`.

    python -m local_backend.shadow_service --dir shadows/ --mqtt-port 8883 --certs certs/

It answers ``$aws/things/{thing}/shadow/update|get|delete`` as AWS IoT does; the broker's ACL
lets only the thing itself and the backend use a thing's shadow topics. Documents persist, one
JSON file per thing, across the service's restart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ven_common.contract import MqttTopics

from local_backend import missing_certificate
from local_backend.shadow_book import Shadow, ShadowBook

_log = logging.getLogger("shadow_service")
EVERY_THING = MqttTopics("+")


def load(directory: Path) -> ShadowBook:
    shadows = {}
    for path in directory.glob("*.json"):
        try:
            shadows[path.stem] = Shadow.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            _log.error("unreadable shadow %s: %s", path, exc)
    return ShadowBook(shadows)


def save(directory: Path, book: ShadowBook, thing: str) -> None:
    target = directory / f"{thing}.json"
    shadow = book.shadows.get(thing)
    if shadow is None:
        target.unlink(missing_ok=True)
        return
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".shadow-")
    with os.fdopen(fd, "w") as fh:
        json.dump(shadow.to_dict(), fh)
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local_backend.shadow_service", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="where the shadow documents persist")
    p.add_argument("--mqtt-host", default="localhost")
    p.add_argument("--mqtt-port", type=int, default=8883)
    p.add_argument("--certs", type=Path, required=True, help="folder with ca.pem and shadow_service.crt/.key")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if missing_certificate(args.certs, "shadow_service", "shadow_service"):
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    book = load(args.dir)
    lock = threading.Lock()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="shadow_service", clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(args.certs / "ca.pem"), certfile=str(args.certs / "shadow_service.crt"),
                   keyfile=str(args.certs / "shadow_service.key"), cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(1, 5)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            _log.error("MQTT connect refused: %s", rc)
            return
        c.subscribe([(t, 1) for t in (EVERY_THING.shadow_update, EVERY_THING.shadow_get, EVERY_THING.shadow_delete)])
        _log.info("serving %d shadow(s) on %s:%d", len(book.shadows), args.mqtt_host, args.mqtt_port)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 5 or MqttTopics(parts[2]).shadow(parts[4]) != msg.topic:
            return
        thing, op = parts[2], parts[4]
        now = int(time.time())
        with lock:
            try:
                replies = getattr(book, op)(thing, bytes(msg.payload), now)
                if op in ("update", "delete") and any(s.endswith("accepted") for s, _ in replies):
                    save(args.dir, book, thing)
            except Exception:  # noqa: BLE001 - no request may take the service down
                _log.exception("shadow %s of %s failed", op, thing)
                return
        for suffix, body in replies:
            c.publish(MqttTopics(thing).shadow(suffix), json.dumps(body, separators=(",", ":")), qos=1)

    client.on_connect = on_connect
    client.on_message = on_message
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    client.connect_async(args.mqtt_host, args.mqtt_port, keepalive=30)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
