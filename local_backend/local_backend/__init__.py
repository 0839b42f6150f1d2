"""The cloud side's local stand-ins: the seed's backend (``python -m local_backend``) and AWS IoT's
Device Shadow service (``python -m local_backend.shadow_service``)."""

from __future__ import annotations

import sys
from pathlib import Path


def missing_certificate(certs: Path, identity: str, prog: str) -> bool:
    """True (and one line saying what to do) when ``certs`` lacks the CA or ``identity``'s pair."""
    for name in ("ca.pem", f"{identity}.crt", f"{identity}.key"):
        if not (certs / name).exists():
            print(f"{prog}: error: missing {certs / name}: run ./scripts/ven_control.sh start (dev PKI)",
                  file=sys.stderr)
            return True
    return False
