from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from ven_common.broker_conf import render_acl, write_broker_files
from ven_common.pki import generate_dev_pki

from backendbridge.certcheck import certificate_problems


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return generate_dev_pki(tmp_path_factory.mktemp("pki"), "volttron_thing")


def test_pki_files_and_modes(pki) -> None:  # type: ignore[no-untyped-def]
    for name in ("ca.pem", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
                 "cloud_backend.crt", "cloud_backend.key", "other_thing.crt", "other_thing.key",
                 "rogue_ca.pem", "rogue.crt", "rogue.key"):
        path = pki.root / name
        assert path.is_file(), name
        if name.endswith(".key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pki_is_idempotent(pki) -> None:  # type: ignore[no-untyped-def]
    before = {p.name: p.read_bytes() for p in pki.root.iterdir()}
    generate_dev_pki(pki.root, "volttron_thing")
    assert {p.name: p.read_bytes() for p in pki.root.iterdir()} == before


def test_good_certs_pass(pki) -> None:  # type: ignore[no-untyped-def]
    errors, _ = certificate_problems(pki.ca, pki.client_cert, pki.client_key, "volttron_thing")
    assert errors == []


def test_each_problem_is_reported(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    errors, _ = certificate_problems(tmp_path / "no.pem", pki.client_cert, pki.client_key, "volttron_thing")
    assert any("not found" in e for e in errors)
    errors, _ = certificate_problems(pki.ca, pki.client_cert, pki.client_key, "other_thing")
    assert any("does not match the thing name" in e for e in errors)
    errors, _ = certificate_problems(pki.ca, pki.client_cert, pki.other_key, "volttron_thing")
    assert any("does not belong" in e for e in errors)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3000)
    errors, _ = certificate_problems(pki.ca, pki.client_cert, pki.client_key, "volttron_thing", now=future)
    assert any("expired" in e for e in errors)
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    errors, _ = certificate_problems(pki.ca, pki.client_cert, pki.client_key, "volttron_thing", now=past)
    assert any("not valid before" in e for e in errors)
    loose = tmp_path / "loose.key"
    loose.write_bytes(pki.client_key.read_bytes())
    os.chmod(loose, 0o644)
    errors, _ = certificate_problems(pki.ca, pki.client_cert, loose, "volttron_thing")
    assert any("chmod 600" in e for e in errors)
    assert all("PRIVATE KEY" not in e for e in errors)


def test_broker_conf_rendering(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = write_broker_files(port=18999, pki_dir=pki.root, broker_dir=tmp_path / "b", as_root=True)
    text = conf.read_text()
    for line in ("per_listener_settings true", "require_certificate true", "use_identity_as_username true",
                 "max_qos 1", "autosave_interval 1", "set_tcp_nodelay true", "message_size_limit 131072",
                 "max_queued_messages 100000", "listener 18999 127.0.0.1", "user root"):
        assert line in text
    assert (tmp_path / "b" / "data").is_dir()
    assert "user root" not in write_broker_files(port=1, pki_dir=pki.root, broker_dir=tmp_path / "c", as_root=False).read_text()
    acl = render_acl()
    assert "pattern read ven/cmd/%u" in acl and "topic readwrite $aws/#" in acl and "user cloud_backend" in acl


def test_isolated_check_gives_the_same_verdict(tmp_path) -> None:
    from backendbridge.certcheck import certificate_problems_isolated

    pki = generate_dev_pki(tmp_path / "pki")
    assert certificate_problems_isolated(pki.ca, pki.client_cert, pki.client_key, "volttron_thing") == ([], [])
    errors, _ = certificate_problems_isolated(pki.ca, pki.client_cert, pki.client_key, "other_thing")
    assert errors and "other_thing" in " ".join(errors)
