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
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _project_env  # noqa: F401 - the project's venv and packages, from any shell (scripts/_project_env.py)

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


def rejection_fix(ack: dict) -> str:
    """What to do about a status command the VEN (or its bridge) refused."""
    reason = str(ack.get("reason") or "")
    if "AuthException" in reason or "does not have access" in reason:
        return ("the bridge lacks its right to call the VEN (its grants in authz.json, lost with a `vctl remove`): "
                "./scripts/ven_control.sh start grants them again")
    if "ven.agent" in reason and ("Unreachable" in reason or "timeout" in reason.lower()):
        return "the VEN agent does not answer the bridge: ./scripts/ven_control.sh status, then start"
    return "see the VEN's log: ./scripts/ven_control.sh logs"


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


class Doctor:
    """The checks, each a method returning its "ok" detail or raising :class:`Failure`."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.ca_path, self.cert_path, self.key_path = a.certs / "ca.pem", a.certs / "client.crt", a.certs / "client.key"
        self._loaded: dict[str, x509.Certificate] = {}
        self.settings = CloudSettings(endpoint=a.endpoint, port=a.port, certs=a.certs, cert_name="cloud_backend",
                                      ca_name="ca.pem", thing=a.thing, connect_timeout=a.timeout)
        self.topics = MqttTopics(a.thing)

    def cert(self) -> x509.Certificate:
        if "cert" not in self._loaded:
            if not self.cert_path.exists():
                raise Failure(f"{self.cert_path} is missing: run ./scripts/ven_control.sh start (dev PKI) or put the "
                              "thing's AWS IoT certificate there")
            self._loaded["cert"] = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return self._loaded["cert"]

    def thing_name(self) -> str:
        cn = _cn(self.cert())
        if cn == AWS_CN:
            return f"AWS-issued certificate (CN {AWS_CN!r}): the thing is the one it is attached to in AWS IoT"
        if cn != self.a.thing:
            raise Failure(f"IOT_THING_NAME is {self.a.thing!r} but certs/client.crt is for {cn!r}: set "
                          f"IOT_THING_NAME={cn} or use that thing's certificate")
        return f"IOT_THING_NAME {self.a.thing!r} = the certificate's CN"

    def expiry(self) -> str:
        c = self.cert()
        now = dt.datetime.now(dt.UTC)
        if now < c.not_valid_before_utc:
            raise Failure(f"certs/client.crt is valid only from {c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
                          "check the machine's clock")
        if now > c.not_valid_after_utc:
            raise Failure(f"certs/client.crt expired {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: issue a new one "
                          "(dev PKI: delete certs/client.* and run ./scripts/ven_control.sh start)")
        return f"valid until {c.not_valid_after_utc:%Y-%m-%d} ({(c.not_valid_after_utc - now).days} days)"

    def key_matches(self) -> str:
        if not self.key_path.exists():
            raise Failure(f"{self.key_path} is missing: put the thing's private key there (chmod 600)")
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if key.public_key().public_bytes(enc, pub) != self.cert().public_key().public_bytes(enc, pub):
            raise Failure("certs/client.key does not belong to certs/client.crt: put the matching key there")
        mode = self.key_path.stat().st_mode & 0o777
        return "the key matches the certificate" + ("" if mode & 0o077 == 0 else f" (mode {mode:o}: chmod 600 it)")

    def chain(self) -> str:
        if not self.ca_path.exists():
            raise Failure(f"{self.ca_path} is missing: put the CA there (Amazon's root CA for AWS IoT)")
        cas = x509.load_pem_x509_certificates(self.ca_path.read_bytes())
        c = self.cert()
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

    def handshake(self) -> str:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(str(self.ca_path))
        ctx.use_certificate_file(str(self.cert_path))
        ctx.use_privatekey_file(str(self.key_path))
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, c, errno, depth, ok: bool(ok))
        try:
            sock = socket.create_connection((self.a.endpoint, self.a.port), timeout=self.a.timeout)
        except OSError as exc:
            raise Failure(f"{self.a.endpoint}:{self.a.port} does not accept connections ({exc}): is the broker running? "
                          "./scripts/ven_control.sh status (ss -ltnp shows who listens)") from None
        sock.settimeout(None)  # pyOpenSSL wants a blocking socket (a timeout reads as WantRead)
        conn = SSL.Connection(ctx, sock)
        conn.set_tlsext_host_name(self.a.endpoint.encode())
        conn.set_connect_state()
        try:
            conn.do_handshake()
            self._await_refusal(conn, sock, 1.0)
        except SSL.Error as exc:
            raise Failure(f"TLS handshake with {self.a.endpoint}:{self.a.port} failed: {exc}: the server refused the "
                          "certificate, or certs/ca.pem is not the server's CA") from None
        finally:
            sock.close()
        peer = [_cn(c.to_cryptography()) for c in (conn.get_peer_cert_chain() or [])]
        return f"{self.a.endpoint}:{self.a.port} {conn.get_protocol_version_name()}, server chain {' <- '.join(peer) or '?'}"


    @staticmethod
    def _await_refusal(conn: SSL.Connection, sock: socket.socket, seconds: float) -> None:
        """TLS 1.3 reports a refused client certificate only after the handshake: listen for its alert briefly.
        Non-blocking: the server's session tickets make the socket readable without any data to read, and a
        blocking read would then wait until the broker drops a client that never sends CONNECT (~90 s)."""
        sock.setblocking(False)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
            try:
                conn.recv(1)
            except SSL.WantReadError:
                continue  # a session ticket, no data: keep listening until the deadline
            except SSL.ZeroReturnError:
                return  # closed cleanly

    def round_trip(self) -> str:
        if not (self.a.certs / "cloud_backend.crt").exists():
            raise Failure("no cloud_backend certificate in certs/ to send a command as the backend: send one from "
                          f"the AWS IoT console's MQTT test client to {self.topics.cmd} instead")
        command = {"op": "status", "correlationId": new_correlation_id("doctor"), "venId": self.a.thing}
        try:
            with CloudClient(self.settings) as client:
                ack = client.request(command, self.a.timeout)
        except CliError as exc:
            raise Failure(f"{exc} (the bridge must be subscribed to {self.topics.cmd}: "
                          "grep backendbridge /tmp/ven_enhanced.log)") from None
        if ack.get("status") != "accepted":
            # The path is proven only by an accepted ack: a rejected one is the failure to explain.
            raise Failure(f"{self.topics.cmd} -> ack {ack.get('status')}: {ack.get('reason') or 'no reason given'} "
                          f"(reason_code {ack.get('reason_code')}); {rejection_fix(ack)}")
        return f"{self.topics.cmd} -> ack {ack.get('status')} ({ack.get('correlationId')})"

    def telemetry(self) -> str:
        box: queue.Queue[dict] = queue.Queue()

        def on_reading(topic: str, payload: bytes) -> None:
            try:
                doc = json.loads(payload)
            except ValueError:
                return
            if isinstance(doc, dict) and doc.get("venId") == self.a.thing:
                box.put(doc)
        try:
            with CloudClient(self.settings) as client:
                client.subscribe(self.topics.metering, on_reading)
                doc = box.get(timeout=self.a.timeout)
        except queue.Empty:
            raise Failure(f"no reading from {self.a.thing} on {self.topics.metering} in {self.a.timeout:g} s: "
                          "./scripts/ven_control.sh status; the driver: grep platform_driver /tmp/ven_enhanced.log") from None
        except CliError as exc:
            raise Failure(str(exc)) from None
        return f"reading from {self.a.thing}: power_kw {doc.get('power_kw')}, quality {doc.get('quality', '?')}"

    def backend(self) -> str:
        if not self.a.backend_url:
            raise Failure("BACKEND_URL is not set: set it to your backend (the local default starts a stand-in)")
        try:
            with urllib.request.urlopen(self.a.backend_url.rstrip("/") + "/health", timeout=self.a.timeout) as resp:
                body = resp.read(2000).decode(errors="replace")
                return f"{self.a.backend_url}/health: {resp.status} {body[:120]}"
        except (urllib.error.URLError, OSError) as exc:
            raise Failure(f"{self.a.backend_url}/health unreachable ({getattr(exc, 'reason', exc)}): is the backend "
                          "running? ./scripts/ven_control.sh status") from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thing", default=os.environ.get("IOT_THING_NAME") or DEFAULT_THING_NAME)
    p.add_argument("--endpoint", default=os.environ.get("IOT_ENDPOINT") or "localhost")
    p.add_argument("--port", type=int, default=int(os.environ.get("IOT_PORT") or (
        8883 if os.environ.get("IOT_ENDPOINT") else os.environ.get("BROKER_PORT") or 8883)))
    p.add_argument("--certs", type=Path, default=Path(os.environ.get("VEN_CLOUD_CERTS") or REPO / "certs"))
    p.add_argument("--backend-url", default=os.environ.get("BACKEND_URL") or "")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--command-path", action="store_true",
                   help="only the command round trip, one line for `ven_control.sh status` (exit 0 accepted, 3 not)")
    a = p.parse_args()
    check = Check()

    doctor = Doctor(a)
    if a.command_path:
        return command_path_line(doctor)
    check.run("thing name", doctor.thing_name)
    check.run("certificate expiry", doctor.expiry)
    check.run("key matches certificate", doctor.key_matches)
    check.run("chain verifies against certs/ca.pem", doctor.chain)
    check.run("TLS handshake with the endpoint", doctor.handshake)
    check.run("command round trip through the cloud", doctor.round_trip)
    check.run("telemetry flowing", doctor.telemetry)
    check.run("backend health", doctor.backend)
    print(f"{8 - check.failed} of 8 checks passed" + ("" if not check.failed else f"; {check.failed} failed"))
    return check.failed


def command_path_line(doctor: Doctor) -> int:
    """`status`'s proof of the command path: a status command as the backend sends it, answered accepted."""
    try:
        print(f"command    status through the cloud: accepted ({doctor.round_trip()})")
        return 0
    except Failure as exc:
        print(f"command    {exc}")
    except Exception as exc:  # noqa: BLE001 - status prints a cause, never a traceback
        print(f"command    no round trip ({type(exc).__name__}: {exc}): ./scripts/ven_control.sh doctor")
    return 3


if __name__ == "__main__":
    sys.exit(main())
