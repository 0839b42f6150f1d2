"""`doctor`: the guide's troubleshooting as checks, run against the session's stand-ins, and the
causes it names for a wrong thing name, an expired certificate and a stopped broker."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.broker import LocalBroker, free_port
from tests.support.cloud import CloudBackend
from tests.support.system import REPO, Platform

pytestmark = pytest.mark.platform


def _doctor(certs: Path, port: int, backend: str, *extra: str, thing: str = "volttron_thing") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts/doctor.py"), "--certs", str(certs), "--port", str(port),
                           "--backend-url", backend, "--thing", thing, "--timeout", "8", *extra], check=False,
                          capture_output=True, text=True, timeout=120)


def test_doctor_passes_on_the_default_run(platform: Platform, broker: LocalBroker, cloud: CloudBackend,
                                          certs: Path) -> None:
    result = _doctor(certs, broker.port, cloud.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok    ") + result.stdout.startswith("ok    ") == 8, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_names_a_wrong_thing_an_expired_certificate_and_a_stopped_broker(
        platform: Platform, broker: LocalBroker, cloud: CloudBackend, certs: Path, tmp_path: Path) -> None:
    wrong = _doctor(certs, broker.port, cloud.url, thing="nobody_thing")
    assert wrong.returncode >= 1 and "IOT_THING_NAME is 'nobody_thing' but certs/client.crt is for 'volttron_thing'" \
        in wrong.stdout, wrong.stdout

    # An expired certificate for the thing, signed by the dev CA.
    expired = tmp_path / "certs"
    shutil.copytree(certs, expired)
    ca_cert = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "volttron_thing")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    (expired / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (expired / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    (expired / "client.key").chmod(0o600)
    old = _doctor(expired, broker.port, cloud.url)
    assert old.returncode >= 1 and "FAIL  certificate expiry: certs/client.crt expired" in old.stdout, old.stdout
    assert "ok    key matches certificate" in old.stdout and "ok    thing name" in old.stdout

    closed = free_port()  # nothing listens there: the broker "stopped"
    down = _doctor(certs, closed, cloud.url)
    assert down.returncode >= 3, down.stdout
    assert f"localhost:{closed} does not accept connections" in down.stdout and "ven_control.sh status" in down.stdout
    assert "Traceback" not in down.stdout + down.stderr
