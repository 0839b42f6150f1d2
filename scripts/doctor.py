#!/usr/bin/env python3
"""The operations guide's Troubleshooting section, as checks: each prints ok, or the cause and the fix.

    ./scripts/ven_control.sh doctor            (or scripts/doctor.py [--endpoint HOST] [--port N])

1. IOT_THING_NAME against the certificate's thing     5. the endpoint answers a TLS handshake with the
2. the certificate is valid now (expiry)                 thing's certificate (the server's chain, any alert)
3. the key matches the certificate                    6. a status command round trip through the cloud
4. the chain verifies against certs/ca.pem               (the bridge subscribed to ven/cmd/{thing})
                                                      7. telemetry flowing on volttron/metering
                                                      8. the backend's /health
Works against the local stand-ins and against a real IOT_ENDPOINT. Exit status: 0 when every check
passes, else the number of failed checks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import select
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

import contextlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from ven_common.cloud_client import CliError, CloudClient, CloudSettings, new_correlation_id
from ven_common.contract import DEFAULT_THING_NAME, MqttTopics

REPO = Path(__file__).resolve().parents[1]
AWS_CN = "AWS IoT Certificate"


class Check:
    def __init__(self) -> None:
        self.failed = 0

    def run(self, name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
        except Failure as exc:
            self.failed += 1
            print(f"FAIL  {name}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check, never a traceback
            self.failed += 1
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}")
            return
        print(f"ok    {name}: {detail}")


class Failure(Exception):
    """The cause and the fix, in one line."""


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def main() -> int:  # noqa: C901, PLR0915 - the checks are closures over the arguments; mccabe sums them
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thing", default=os.environ.get("IOT_THING_NAME") or DEFAULT_THING_NAME)
    p.add_argument("--endpoint", default=os.environ.get("IOT_ENDPOINT") or "localhost")
    p.add_argument("--port", type=int, default=int(os.environ.get("IOT_PORT") or (
        8883 if os.environ.get("IOT_ENDPOINT") else os.environ.get("BROKER_PORT") or 8883)))
    p.add_argument("--certs", type=Path, default=Path(os.environ.get("VEN_CLOUD_CERTS") or REPO / "certs"))
    p.add_argument("--backend-url", default=os.environ.get("BACKEND_URL") or "")
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args()
    ca_path, cert_path, key_path = a.certs / "ca.pem", a.certs / "client.crt", a.certs / "client.key"
    check = Check()
    loaded: dict[str, x509.Certificate] = {}

    def cert() -> x509.Certificate:
        if "cert" not in loaded:
            if not cert_path.exists():
                raise Failure(f"{cert_path} is missing: run ./scripts/ven_control.sh start (dev PKI) or put the "
                              "thing's AWS IoT certificate there")
            loaded["cert"] = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return loaded["cert"]

    def thing_name() -> str:
        cn = _cn(cert())
        if cn == AWS_CN:
            return f"AWS-issued certificate (CN {AWS_CN!r}): the thing is the one it is attached to in AWS IoT"
        if cn != a.thing:
            raise Failure(f"IOT_THING_NAME is {a.thing!r} but certs/client.crt is for {cn!r}: set "
                          f"IOT_THING_NAME={cn} or use that thing's certificate")
        return f"IOT_THING_NAME {a.thing!r} = the certificate's CN"

    def expiry() -> str:
        c = cert()
        now = dt.datetime.now(dt.UTC)
        if now < c.not_valid_before_utc:
            raise Failure(f"certs/client.crt is valid only from {c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
                          "check the machine's clock")
        if now > c.not_valid_after_utc:
            raise Failure(f"certs/client.crt expired {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: issue a new one "
                          "(dev PKI: delete certs/client.* and run ./scripts/ven_control.sh start)")
        return f"valid until {c.not_valid_after_utc:%Y-%m-%d} ({(c.not_valid_after_utc - now).days} days)"

    def key_matches() -> str:
        if not key_path.exists():
            raise Failure(f"{key_path} is missing: put the thing's private key there (chmod 600)")
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if key.public_key().public_bytes(enc, pub) != cert().public_key().public_bytes(enc, pub):
            raise Failure("certs/client.key does not belong to certs/client.crt: put the matching key there")
        mode = key_path.stat().st_mode & 0o777
        return "the key matches the certificate" + ("" if mode & 0o077 == 0 else f" (mode {mode:o}: chmod 600 it)")

    def chain() -> str:
        if not ca_path.exists():
            raise Failure(f"{ca_path} is missing: put the CA there (Amazon's root CA for AWS IoT)")
        cas = x509.load_pem_x509_certificates(ca_path.read_bytes())
        c = cert()
        for ca in cas:
            try:
                c.verify_directly_issued_by(ca)
            except (ValueError, TypeError, Exception):  # noqa: BLE001 - not this CA
                continue
            return f"issued by {_cn(ca)!r} in certs/ca.pem"
        if _cn(c) == AWS_CN:
            return "AWS-issued (its issuer is not in certs/ca.pem, which holds the server's root: expected)"
        raise Failure(f"certs/client.crt was not issued by any CA in certs/ca.pem (issuer {c.issuer.rfc4514_string()}): "
                      "use the CA that signed it, or a certificate from this CA")

    def handshake() -> str:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(str(ca_path))
        ctx.use_certificate_file(str(cert_path))
        ctx.use_privatekey_file(str(key_path))
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, c, errno, depth, ok: bool(ok))
        try:
            sock = socket.create_connection((a.endpoint, a.port), timeout=a.timeout)
        except OSError as exc:
            raise Failure(f"{a.endpoint}:{a.port} does not accept connections ({exc}): is the broker running? "
                          "./scripts/ven_control.sh status (ss -ltnp shows who listens)") from None
        sock.settimeout(None)  # pyOpenSSL wants a blocking socket (a timeout reads as WantRead)
        conn = SSL.Connection(ctx, sock)
        conn.set_tlsext_host_name(a.endpoint.encode())
        conn.set_connect_state()
        try:
            conn.do_handshake()
            # TLS 1.3 reports a refused client certificate only after the handshake: read briefly.
            if select.select([sock], [], [], 1.0)[0]:
                with contextlib.suppress(SSL.ZeroReturnError):
                    conn.recv(1)
        except SSL.Error as exc:
            raise Failure(f"TLS handshake with {a.endpoint}:{a.port} failed: {exc}: the server refused the "
                          "certificate, or certs/ca.pem is not the server's CA") from None
        finally:
            sock.close()
        peer = [_cn(c.to_cryptography()) for c in (conn.get_peer_cert_chain() or [])]
        return f"{a.endpoint}:{a.port} {conn.get_protocol_version_name()}, server chain {' <- '.join(peer) or '?'}"

    settings = CloudSettings(endpoint=a.endpoint, port=a.port, certs=a.certs, cert_name="cloud_backend",
                             ca_name="ca.pem", thing=a.thing, connect_timeout=a.timeout)
    topics = MqttTopics(a.thing)

    def round_trip() -> str:
        if not (a.certs / "cloud_backend.crt").exists():
            raise Failure("no cloud_backend certificate in certs/ to send a command as the backend: send one from "
                          "the AWS IoT console's MQTT test client to ven/cmd/{thing} instead")
        command = {"op": "status", "correlationId": new_correlation_id("doctor"), "venId": a.thing}
        try:
            with CloudClient(settings) as client:
                ack = client.request(command, a.timeout)
        except CliError as exc:
            raise Failure(f"{exc} (the bridge must be subscribed to {topics.cmd}: "
                          "grep backendbridge /tmp/ven_enhanced.log)") from None
        return f"{topics.cmd} -> ack {ack.get('status')} ({ack.get('correlationId')})"

    def telemetry() -> str:
        box: queue.Queue[dict] = queue.Queue()

        def on_reading(topic: str, payload: bytes) -> None:
            try:
                doc = json.loads(payload)
            except ValueError:
                return
            if isinstance(doc, dict) and doc.get("venId") == a.thing:
                box.put(doc)
        try:
            with CloudClient(settings) as client:
                client.subscribe(topics.metering, on_reading)
                doc = box.get(timeout=a.timeout)
        except queue.Empty:
            raise Failure(f"no reading from {a.thing} on {topics.metering} in {a.timeout:g} s: "
                          "./scripts/ven_control.sh status; the driver: grep platform_driver /tmp/ven_enhanced.log") from None
        except CliError as exc:
            raise Failure(str(exc)) from None
        return f"reading from {a.thing}: power_kw {doc.get('power_kw')}, quality {doc.get('quality', '?')}"

    def backend() -> str:
        if not a.backend_url:
            raise Failure("BACKEND_URL is not set: set it to your backend (the local default starts a stand-in)")
        try:
            with urllib.request.urlopen(a.backend_url.rstrip("/") + "/health", timeout=a.timeout) as resp:
                body = resp.read(2000).decode(errors="replace")
                return f"{a.backend_url}/health: {resp.status} {body[:120]}"
        except (urllib.error.URLError, OSError) as exc:
            raise Failure(f"{a.backend_url}/health unreachable ({getattr(exc, 'reason', exc)}): is the backend "
                          "running? ./scripts/ven_control.sh status") from None

    check.run("thing name", thing_name)
    check.run("certificate expiry", expiry)
    check.run("key matches certificate", key_matches)
    check.run("chain verifies against certs/ca.pem", chain)
    check.run("TLS handshake with the endpoint", handshake)
    check.run("command round trip through the cloud", round_trip)
    check.run("telemetry flowing", telemetry)
    check.run("backend health", backend)
    print(f"{8 - check.failed} of 8 checks passed" + ("" if not check.failed else f"; {check.failed} failed"))
    return check.failed


if __name__ == "__main__":
    sys.exit(main())
