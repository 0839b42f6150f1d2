"""A development PKI that mimics AWS IoT's mutual-TLS identities for the local broker.

Files written into ``--out`` (keys 0600):

* ``ca.pem`` / ``ca.key``: the dev root CA (the seed calls the CA bundle ``ca.pem``);
* ``server.crt`` / ``server.key``: the broker, CN=localhost, SAN localhost/127.0.0.1/::1;
* ``client.crt`` / ``client.key``: the thing (CN = thing name; the seed's file names);
* ``cloud_backend.crt/.key`` and ``other_thing.crt/.key``: more clients of the same CA;
* ``rogue_ca.pem`` and ``rogue.crt/.key``: a different CA and a client with the thing's CN
  signed by it, which the broker must refuse.

Idempotent: valid existing files are kept, so scripts may call it on every start. A leaf is
regenerated when it is missing, expires within a day, does not match its key, was not issued
by the current CA, or has a different CN (e.g. ``--thing`` changed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ven_common.contract import BACKEND_IDENTITY, DEFAULT_THING_NAME, SHADOW_SERVICE_IDENTITY

CA_DAYS = 3650
LEAF_DAYS = 825
KEY_BITS = 2048
_RENEW_BEFORE = dt.timedelta(days=1)


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of a generated PKI lives."""

    root: Path
    thing: str

    def _p(self, name: str) -> Path:
        return self.root / name

    @property
    def ca(self) -> Path:
        return self._p("ca.pem")

    @property
    def ca_key(self) -> Path:
        return self._p("ca.key")

    @property
    def server_cert(self) -> Path:
        return self._p("server.crt")

    @property
    def server_key(self) -> Path:
        return self._p("server.key")

    @property
    def client_cert(self) -> Path:
        return self._p("client.crt")

    @property
    def client_key(self) -> Path:
        return self._p("client.key")

    @property
    def backend_cert(self) -> Path:
        return self._p(f"{BACKEND_IDENTITY}.crt")

    @property
    def backend_key(self) -> Path:
        return self._p(f"{BACKEND_IDENTITY}.key")

    @property
    def shadow_cert(self) -> Path:
        return self._p(f"{SHADOW_SERVICE_IDENTITY}.crt")

    @property
    def shadow_key(self) -> Path:
        return self._p(f"{SHADOW_SERVICE_IDENTITY}.key")

    @property
    def other_cert(self) -> Path:
        return self._p("other_thing.crt")

    @property
    def other_key(self) -> Path:
        return self._p("other_thing.key")

    @property
    def rogue_ca(self) -> Path:
        return self._p("rogue_ca.pem")

    @property
    def rogue_cert(self) -> Path:
        return self._p("rogue.crt")

    @property
    def rogue_key(self) -> Path:
        return self._p("rogue.key")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    # Create with 0600 from the start: a chmod after writing would leave a readable window.
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _load(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    cert_key = cert.public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(cert_key, rsa.RSAPublicKey):
        return None
    if cert_key.public_numbers() != key.public_key().public_numbers():
        return None
    return cert, key


def _cn(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    ca_pub = ca.public_key()
    assert isinstance(ca_pub, rsa.RSAPublicKey)
    try:
        ca_pub.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm or hashes.SHA256(),
        )
    except InvalidSignature:
        return False
    return True


def _still_valid(cert: x509.Certificate) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - _RENEW_BEFORE > now


def _make_ca(cn: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    cn: str,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    server: bool,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    now = _now()
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _ensure_ca(cert_path: Path, key_path: Path, cn: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey, bool]:
    loaded = _load(cert_path, key_path)
    if loaded is not None and _still_valid(loaded[0]) and _cn(loaded[0]) == cn:
        return loaded[0], loaded[1], False
    cert, key = _make_ca(cn)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert, key, True


def _ensure_leaf(
    cert_path: Path,
    key_path: Path,
    cn: str,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    server: bool = False,
) -> bool:
    loaded = _load(cert_path, key_path)
    if (
        loaded is not None
        and _still_valid(loaded[0])
        and _cn(loaded[0]) == cn
        and _issued_by(loaded[0], ca_cert)
    ):
        if (key_path.stat().st_mode & 0o077) != 0:
            os.chmod(key_path, 0o600)
        return False
    cert, key = _make_leaf(cn, ca_cert, ca_key, server=server)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return True


def generate_dev_pki(out_dir: str | os.PathLike[str], thing: str = DEFAULT_THING_NAME) -> PkiPaths:
    """Create (or complete) the dev PKI in ``out_dir``; returns the file locations."""
    paths = PkiPaths(Path(out_dir), thing)
    paths.root.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, _ = _ensure_ca(paths.ca, paths.ca_key, "VEN dev root CA")
    _ensure_leaf(paths.server_cert, paths.server_key, "localhost", ca_cert, ca_key, server=True)
    _ensure_leaf(paths.client_cert, paths.client_key, thing, ca_cert, ca_key)
    _ensure_leaf(paths.backend_cert, paths.backend_key, BACKEND_IDENTITY, ca_cert, ca_key)
    _ensure_leaf(paths.shadow_cert, paths.shadow_key, SHADOW_SERVICE_IDENTITY, ca_cert, ca_key)
    _ensure_leaf(paths.other_cert, paths.other_key, "other_thing", ca_cert, ca_key)
    rogue_cert, rogue_key, _ = _ensure_ca(paths.rogue_ca, paths.root / "rogue_ca.key", "VEN rogue CA")
    _ensure_leaf(paths.rogue_cert, paths.rogue_key, thing, rogue_cert, rogue_key)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (idempotently) the VEN dev PKI.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--thing", default=DEFAULT_THING_NAME, help="thing name = client CN")
    args = parser.parse_args(argv)
    paths = generate_dev_pki(args.out, args.thing)
    print(f"dev PKI for thing {paths.thing!r} in {paths.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
