"""`ven_control.sh start` converges from any state, or says why in one line (issue: convergent start).

The real script runs beside the suite's own platform (`tests/support/controlled.py`: its own VEN_ROOT,
ports, log and a copy of the suite's venv, so the matrix may break that venv). One system serves the
matrix: each test breaks one part the way it breaks in real life (a SIGKILL, a
`vctl stop`/`remove`, a PID reused by another program, a port someone else holds, a package
removed from the venv), runs `start` and checks the outcome: fully up again (status clean, a seed
event acked through the broker) with nothing else restarted, or the documented one-line error.
Every duration is printed, none asserted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import free_port
from tests.support.controlled import System, base_env, error_line, last_line
from tests.support.system import REPO, wait_until

pytestmark = pytest.mark.platform

@pytest.fixture()
def bystander():
    """An unrelated program of the same user, whose PID the tests plant in pid files."""
    proc = subprocess.Popen(["sleep", "900"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_from_nothing_then_again_nothing_changed(controlled: System) -> None:
    first, took_first = controlled.start()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert last_line(first).startswith("start: changed:") and "started the platform" in last_line(first)
    controlled.assert_up(first)

    second, took_second = controlled.start()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert last_line(second) == "start: nothing changed (everything was already running)", second.stdout[-2000:]
    print(f"start from nothing {took_first:.1f} s; again {took_second:.1f} s (nothing changed)")


def test_broker_killed_restarts_only_the_broker(controlled: System) -> None:
    pids, platform_pid = controlled.agent_pids(), controlled.platform_pid()
    assert all(pids.values()), pids
    broker = controlled.pid("broker")
    os.kill(broker, signal.SIGKILL)
    wait_until(lambda: _gone(broker), 10, 0.1, "the broker gone")
    third, took = controlled.start()
    assert last_line(third) == "start: changed: started the broker", third.stdout[-2000:] + third.stderr[-2000:]
    assert controlled.agent_pids() == pids, "an agent was restarted"
    assert controlled.platform_pid() == platform_pid
    controlled.assert_up(third)
    print(f"broker killed: start took {took:.1f} s (broker only)")


def test_platform_killed_comes_back_without_a_second_set_of_agents(controlled: System) -> None:
    old = controlled.agent_pids()
    os.kill(int(controlled.platform_pid()), signal.SIGKILL)
    status = controlled.control("status", timeout=120)
    assert status.returncode == 3 and "platform   not running: ./scripts/ven_control.sh start" in status.stdout
    result, took = controlled.start()
    assert "started the platform" in last_line(result), result.stdout[-2000:] + result.stderr[-2000:]
    for identity, pid in old.items():
        assert pid and _gone(pid), f"the dead platform's {identity} (pid {pid}) still runs"
    controlled.assert_up(result)
    new = controlled.agent_pids()
    assert all(new.values()) and not set(new.values()) & set(old.values()), (old, new)
    print(f"platform killed: start took {took:.1f} s; {last_line(result)}")


def test_one_agent_stopped_is_started_and_nothing_else(controlled: System) -> None:
    before = controlled.agent_pids()
    uuid = controlled.platform.agents()["ven.bridge"]["agent_uuid"]
    controlled.platform.vctl("stop", uuid)
    status = controlled.control("status", timeout=120)
    assert status.returncode == 3, status.stdout
    assert "ven.bridge" in status.stdout and "./scripts/ven_control.sh start starts it" in status.stdout, status.stdout
    result, took = controlled.start()
    assert last_line(result).startswith("start: changed: started ven.bridge"), result.stdout[-2000:]
    after = controlled.agent_pids()
    assert after["ven.agent"] == before["ven.agent"] and after["platform.driver"] == before["platform.driver"]
    controlled.assert_up(result)
    print(f"one agent stopped: start took {took:.1f} s; {last_line(result)}")


@pytest.mark.parametrize("identity", ["ven.agent", "ven.bridge", "platform.driver"])
def test_one_agent_removed_is_installed_again_with_its_rights(controlled: System, identity: str) -> None:
    """`vctl remove` of any agent: start reinstalls it, grants what the removal deleted (authz.json), and a seed
    event is then accepted through the cloud. The venv is still exactly the lock (the driver's removal uninstalls
    its package: poetry remove)."""
    before = controlled.agent_pids()
    uuid = controlled.platform.agents()[identity]["agent_uuid"]
    controlled.platform.vctl("remove", uuid, "--force", check=False)
    wait_until(lambda: identity not in controlled.platform.agents(), 60, 0.5, f"{identity} removed")
    status = controlled.control("status", timeout=120)
    assert status.returncode == 3 and f"{identity:<16} not installed: ./scripts/ven_control.sh start installs it" \
        in status.stdout, status.stdout
    result, took = controlled.start()
    assert f"installed {identity}" in last_line(result), result.stdout[-2000:] + result.stderr[-2000:]
    for other in {"ven.agent", "ven.bridge", "platform.driver"} - {identity}:
        if not (identity == "ven.agent" and other == "ven.bridge"):  # a restored grant restarts its holder only
            assert controlled.agent_pids()[other] == before[other], f"{other} was restarted"
    controlled.assert_up(result)   # a seed event, accepted: the bridge may call the VEN again
    status = controlled.control("status", timeout=120)
    assert "command    status through the cloud: accepted" in status.stdout, status.stdout
    assert _venv_is_the_lock(controlled.venv) == ""
    again, _ = controlled.start()
    assert last_line(again) == "start: nothing changed (everything was already running)", again.stdout[-2000:]
    print(f"{identity} removed: start took {took:.1f} s; {last_line(result)}")


def test_stale_pid_files_naming_another_program(controlled: System, bystander: subprocess.Popen) -> None:
    """The stand-ins died and their PIDs now belong to another program: not ours, never signalled."""
    for name in ("device", "backend", "shadow"):
        pid = controlled.pid(name)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: _gone(pid), 10, 0.1, f"the {name} gone")
        controlled.pidfile(name).write_text(str(bystander.pid))
    status = controlled.control("status", timeout=120)
    assert status.returncode == 3 and "building panel not running" in status.stdout, status.stdout
    result, took = controlled.start()
    line = last_line(result)
    for part in ("started the shadow service", "started the local backend", "started the building panel"):
        assert part in line, result.stdout[-2000:] + result.stderr[-2000:]
    assert bystander.poll() is None, "start signalled a program that is not ours"
    controlled.assert_up(result)
    assert bystander.poll() is None
    print(f"stale pid files: start took {took:.1f} s; {line}")


@pytest.fixture()
def squatter():
    """Another program listening on a port (this test's own process: psutil can name it)."""
    socks: list[socket.socket] = []

    def take(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        socks.append(sock)

    yield take
    for sock in socks:
        sock.close()


def test_broker_port_taken_names_the_program(controlled: System, squatter) -> None:
    platform_pid = controlled.platform_pid()
    broker = controlled.pid("broker")
    os.kill(broker, signal.SIGKILL)
    wait_until(lambda: _gone(broker), 10, 0.1, "the broker gone")
    port = int(controlled.env["BROKER_PORT"])
    squatter(port)
    result, took = controlled.start()
    assert result.returncode != 0
    line = error_line(result)
    assert f"port {port} (the local broker's) is already in use by python" in line and f"pid {os.getpid()}" in line \
        and "set BROKER_PORT" in line, line
    assert controlled.platform_pid() == platform_pid
    print(f"broker port taken: reported after {took:.1f} s: {line}")


def test_broker_port_freed_then_start_converges(controlled: System) -> None:
    result, took = controlled.start()
    assert last_line(result) == "start: changed: started the broker", result.stdout[-2000:] + result.stderr[-2000:]
    controlled.assert_up(result)
    print(f"broker port freed: start took {took:.1f} s")


def test_web_port_taken_names_the_program(controlled: System, squatter) -> None:
    stopped = controlled.control("stop", timeout=180)
    assert stopped.returncode == 0
    port = int(controlled.env["WEB_PORT"])
    squatter(port)
    result, took = controlled.start()
    assert result.returncode != 0
    line = error_line(result)
    assert f"port {port} (the web page's) is already in use by python" in line and "set WEB_PORT" in line, line
    print(f"web port taken: reported after {took:.1f} s: {line}")


def test_venv_missing_a_package_and_an_unreachable_index(controlled: System, tmp_path: Path) -> None:
    """pyOpenSSL (doctor's) removed by hand: an unreachable index is named, an index without the locked version
    is named with the fix; the configured index heals it."""
    subprocess.run([str(controlled.venv / "bin/python"), "-m", "pip", "uninstall", "-y", "-q", "pyOpenSSL"], check=True,
                   capture_output=True)
    closed = free_port()
    hermetic = {k: v for k, v in controlled.env.items() if not k.startswith("PIP_")}
    env = dict(hermetic, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=f"http://127.0.0.1:{closed}/simple",
               PIP_RETRIES="0", PIP_DEFAULT_TIMEOUT="5")
    t0 = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), "start"], check=False, env=env, capture_output=True,
                            text=True, timeout=600)
    took_bad = time.monotonic() - t0
    assert result.returncode != 0
    line = error_line(result)
    assert "cannot install pyopenssl==" in line.lower() and f"http://127.0.0.1:{closed}/simple" in line \
        and "unreachable" in line and "PIP_INDEX_URL" in line, line

    # An index that answers but no longer has the locked version (deleted from it): one line naming the
    # package and the fix (refresh the lock), not pip's page of output.
    empty = tmp_path / "index"
    (empty / "simple").mkdir(parents=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(empty)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 10, 0.1, "the empty index to listen")
        env["PIP_INDEX_URL"] = f"http://127.0.0.1:{port}/simple"
        gone = subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), "start"], check=False, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        server.kill()
        server.wait()
    assert gone.returncode != 0
    line_gone = error_line(gone)
    assert "the locked pyopenssl==" in line_gone.lower() and "can no longer be had" in line_gone \
        and "refresh-lock" in line_gone, line_gone

    good, took = controlled.start()
    assert "installed the venv's missing pyopenssl==" in last_line(good).lower(), good.stdout[-2000:] + good.stderr[-2000:]
    assert _venv_is_the_lock(controlled.venv) == "", "the venv differs from the lock after the repair"
    controlled.assert_up(good)
    print(f"venv missing pyOpenSSL: unreachable index reported after {took_bad:.1f} s ({line}); "
          f"healed and up in {took:.1f} s")


def test_stop_ends_everything_and_nothing_else(controlled: System, bystander: subprocess.Popen) -> None:
    for name in ("device", "backend"):
        assert controlled.pid(name)
    controlled.pidfile("shadow").write_text(str(bystander.pid))   # a lost pid file: found by its mark
    stopped = controlled.control("stop", timeout=180)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "Stopping the shadow service" in stopped.stdout
    assert not _processes_of(controlled.root), f"processes left behind: {_processes_of(controlled.root)}"
    assert bystander.poll() is None, "stop ended a program that is not ours"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _venv_is_the_lock(venv: Path) -> str:
    """What the venv lacks or has at another version than the lock ('' when it is exactly the lock)."""
    return subprocess.run([str(venv / "bin/python"), str(REPO / "common/ven_common/lockset.py"), "check"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a parent that does not reap counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _processes_of(root: Path) -> list[int]:
    """PIDs whose environment or command line names this system's VEN_ROOT."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            blob = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in blob and int(proc.name) != os.getpid():
            out.append(int(proc.name))
    return out


def test_start_names_an_unwritable_log_at_once(tmp_path: Path) -> None:
    """The platform would die on its first log line; `start` says why, with the fix, in one line."""
    env = base_env(tmp_path, Path(sys.prefix))
    log = tmp_path / "left-by-another-run.log"
    log.write_text("")
    log.chmod(0o444)
    env["VEN_LOG"] = str(log)
    try:
        t0 = time.monotonic()
        result = subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), "start"], check=False, env=env,
                                capture_output=True, text=True, timeout=300)
        took = time.monotonic() - t0
        assert result.returncode != 0
        line = error_line(result)
        assert f"cannot write {log}" in line and "set VEN_LOG" in line, result.stderr[-2000:]
        print(f"unwritable log reported after {took:.1f} s: {line}")
    finally:
        subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), "stop"], check=False, env=env, capture_output=True,
                       timeout=120)
