"""Start-up checks of the TLS material, with messages an operator can act on.

Without them a bad certificate shows up only as an endless reconnect loop with an opaque
TLS alert (see the seed guide's "VEN Won't Connect" section).
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from typing import Any

# cryptography is imported inside certificate_problems: the agent calls the isolated variant and
# must not pay for x509 at import.

# AWS-issued device certificates carry this CN; the thing is bound by the policy, not the CN.
AWS_GENERIC_CN = "AWS IoT Certificate"


def certificate_problems(
    ca: Path,
    cert: Path,
    key: Path,
    thing: str,
    now: dt.datetime | None = None,
) -> tuple[list[str], list[str]]:
    """(errors, warnings). Errors mean connecting cannot work; never logs key material."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    errors: list[str] = []
    warnings: list[str] = []
    now = now or dt.datetime.now(dt.UTC)
    for label, path in (("CA bundle", ca), ("client certificate", cert), ("private key", key)):
        if not path.is_file():
            errors.append(f"{label} not found: {path}")
    if errors:
        return errors, warnings

    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        errors.append(f"private key {key} has mode {mode:04o}; it must not be readable by others (chmod 600)")

    try:
        x509.load_pem_x509_certificates(ca.read_bytes())
    except ValueError as exc:
        errors.append(f"CA bundle {ca} is not PEM certificates: {exc}")

    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError as exc:
        errors.append(f"client certificate {cert} is not a PEM certificate: {exc}")
        return errors, warnings

    _certificate_checks(certificate, cert, thing, now, errors, warnings)

    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError):
        errors.append(f"private key {key} cannot be read (not PEM, or encrypted)")
    else:
        if private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            errors.append(f"private key {key} does not belong to certificate {cert}")
    return errors, warnings


def _certificate_checks(certificate: Any, cert: Path, thing: str, now: dt.datetime,
                        errors: list[str], warnings: list[str]) -> None:
    """Validity window and CN of the client certificate, appended to ``errors``/``warnings``."""
    from cryptography.x509.oid import NameOID

    if now < certificate.not_valid_before_utc:
        errors.append(f"client certificate {cert} is not valid before {certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        errors.append(f"client certificate {cert} expired on {certificate.not_valid_after_utc.isoformat()}")
    elif certificate.not_valid_after_utc - now < dt.timedelta(days=14):
        warnings.append(f"client certificate {cert} expires on {certificate.not_valid_after_utc.isoformat()}")
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    if cn == AWS_GENERIC_CN:
        warnings.append(f"certificate CN is {AWS_GENERIC_CN!r}; the thing name {thing!r} is bound by the AWS policy")
    elif cn != thing:
        errors.append(f"client certificate CN {cn!r} does not match the thing name {thing!r} (IOT_THING_NAME)")


def certificate_problems_isolated(ca: Path, cert: Path, key: Path, thing: str,
                                  timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """:func:`certificate_problems` in a short-lived child process.

    Loading ``cryptography.x509`` costs the long-running bridge ~8 MiB of RSS for a check made
    once per start: the child pays it instead and exits.
    """
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "backendbridge.certcheck", str(ca), str(cert), str(key), thing]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        verdict = json.loads(result.stdout)
        return list(verdict["errors"]), list(verdict["warnings"])
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        # Never skip the check: do it here instead.
        return certificate_problems(ca, cert, key, thing)


def _main(argv: list[str]) -> int:
    import json

    ca, cert, key, thing = argv
    errors, warnings = certificate_problems(Path(ca), Path(cert), Path(key), thing)
    print(json.dumps({"errors": errors, "warnings": warnings}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
