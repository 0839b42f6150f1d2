"""One real VOLTTRON platform and one real mosquitto (mTLS, per-thing ACL) for the whole session.

Both run on free ports with their own VOLTTRON_HOME and PKI under pytest's temp dir, so the
suite passes while `ven_control.sh start`'s system is running.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend import Backend
from tests.support.broker import LocalBroker, free_port
from tests.support.cloud import CloudBackend, ShadowService
from tests.support.controlled import System, controlled_system
from tests.support.device import PanelDevice
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
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PanelDevice]:
    """The default building: the Modbus panel in its own process (power-on defaults at restart)."""
    with PanelDevice(tmp_path_factory.mktemp("panel"), free_port()) as device:
        yield device


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker) -> Iterator[CloudBackend]:
    """The local backend stand-in (FastAPI + SQLite + paho as cloud_backend): the guide's backend."""
    backend = CloudBackend(tmp_path_factory.mktemp("cloud"), broker).start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="session")
def shadows(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker) -> Iterator[ShadowService]:
    """The Device Shadow service stand-in beside the broker."""
    service = ShadowService(tmp_path_factory.mktemp("shadow"), broker).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker, panel: PanelDevice,
             cloud: CloudBackend, shadows: ShadowService) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("volttron")
    p = Platform.create(root, {"IOT_THING_NAME": THING}, web_port=free_port())
    p.start()
    try:
        # Both buildings on the driver; the VEN's circuits on the Modbus panel (the default run's).
        p.install_agents(broker.pki.root, broker.port, panel_port=panel.port, backend_url=cloud.url)
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="session")
def controlled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A system started by the real `ven_control.sh start` (the start matrix, the guide run as a test).

    Not started here: its first test starts it. Stopped at the end (its tests end with `stop`).
    """
    system = controlled_system(tmp_path_factory.mktemp("controlled"))
    try:
        yield system
    finally:
        system.control("stop", timeout=180)


@pytest.fixture()
def backend(broker: LocalBroker, certs: Path) -> Iterator[Backend]:
    b = Backend(certs, broker.port).start()
    yield b
    b.stop()


@pytest.fixture(params=["modbus", "simbuilding"])
def building(request: pytest.FixtureRequest, platform: Platform) -> Iterator[str]:
    """The same behaviour on both buildings: the Modbus panel (default) and the simulation."""
    from tests.support.ven_checks import DEVICE, SIM_DEVICE, switch_building

    if request.param == "modbus":
        yield DEVICE
        return
    switch_building(platform, SIM_DEVICE)
    try:
        yield SIM_DEVICE
    finally:
        switch_building(platform, DEVICE)
