"""One real VOLTTRON platform and one real mosquitto (mTLS, per-thing ACL) for the whole session.

Both run on free ports with their own VOLTTRON_HOME and PKI under pytest's temp dir, so the
suite passes while `ven_control.sh start`'s system is running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.backend import Backend
from tests.support.broker import LocalBroker, free_port
from tests.support.system import Platform

THING = "volttron_thing"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    root = tmp_path_factory.mktemp("mqtt")
    with LocalBroker(root, thing=THING) as b:
        yield b


@pytest.fixture(scope="session")
def certs(broker: LocalBroker) -> Path:
    return broker.pki.root


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("volttron")
    p = Platform.create(root, {"IOT_THING_NAME": THING}, web_port=free_port())
    p.start()
    try:
        p.install_agents(broker.pki.root, broker.port)
        yield p
    finally:
        p.stop()


@pytest.fixture()
def backend(broker: LocalBroker, certs: Path) -> Iterator[Backend]:
    b = Backend(certs, broker.port).start()
    yield b
    b.stop()
