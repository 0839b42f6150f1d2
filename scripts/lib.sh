# Shared shell functions for ven_control.sh, install_agents.sh and run_tests.sh. Sourced, not run.
#
# Layout of the runtime tree ($VEN_ROOT), owned by the service user:
#   venv/        the platform venv (Debian's python3, pinned versions)
#   src/         a copy of this repository the service user can read (root's checkout may be 0700)
#   vhome/       VOLTTRON_HOME of the system started by `ven_control.sh start`
#   certs/       the thing's certificates as the bridge reads them (0600 keys)
#   broker/      mosquitto.conf, aws_iot.acl, persistence, log, pid
#   log/ run/ tmp/

set -o errexit -o pipefail -o nounset -o errtrace
# A step that fails unexpectedly names itself instead of ending the script in silence.
trap '_err_rc=$?; printf "error: %s failed (exit %s, %s line %s)\n" "$BASH_COMMAND" "$_err_rc" "${BASH_SOURCE[0]##*/}" "$LINENO" >&2' ERR

VEN_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VEN_PYTHON="${VEN_PYTHON:-/usr/bin/python3}"
BROKER_PORT="${BROKER_PORT:-8883}"
IOT_THING_NAME="${IOT_THING_NAME:-volttron_thing}"
WEB_PORT="${WEB_PORT:-8080}"
VEN_LOG="${VEN_LOG:-/tmp/ven_enhanced.log}"
# The building: the Modbus panel device (default) or the in-process simulation.
VEN_BUILDING="${VEN_BUILDING:-modbus}"
PANEL_PORT="${PANEL_PORT:-5020}"

if [ "$(id -u)" -eq 0 ]; then
    VEN_USER="${VEN_USER:-volttron}"
    VEN_ROOT="${VEN_ROOT:-/var/lib/volttron-ven}"
else
    VEN_USER="$(id -un)"
    VEN_ROOT="${VEN_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/volttron-ven}"
fi
# Overridable for the test that drives `start` beside the suite's own platform: it shares the
# suite's venv and sources (a `vctl install` edits the shared venv's editable agent paths).
VENV="${VEN_VENV:-$VEN_ROOT/venv}"
VEN_SRC="${VEN_SRC_DIR:-$VEN_ROOT/src}"
export VOLTTRON_HOME="${VOLTTRON_HOME_OVERRIDE:-$VEN_ROOT/vhome}"
BROKER_DIR="$VEN_ROOT/broker"
CLOUD_DIR="$VEN_ROOT/cloud"
DEVICE_DIR="$VEN_ROOT/device"
RUNTIME_CERTS="$VEN_ROOT/certs"

# What `start` changed, for its last line ("nothing changed" when empty).
VEN_CHANGES=()
note_change() { VEN_CHANGES+=("$1"); }

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$1" >&2; exit "${2:-1}"; }

# Run a command as the service user with the platform venv active. VOLTTRON refuses root,
# and runuser keeps root's PATH (pyenv shims the user cannot read), hence the explicit env.
as_svc() {
    local envs=(
        "HOME=$(svc_home)" "USER=$VEN_USER" "LOGNAME=$VEN_USER"
        "PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        "VIRTUAL_ENV=$VENV" "VOLTTRON_HOME=$VOLTTRON_HOME" "TMPDIR=$VEN_ROOT/tmp"
        "VEN_ROOT=$VEN_ROOT" "IOT_THING_NAME=$IOT_THING_NAME" "BROKER_PORT=$BROKER_PORT"
        "WEB_PORT=$WEB_PORT" "VEN_LOG=$VEN_LOG" "LANG=C.UTF-8" "VEN_BUILDING=$VEN_BUILDING" "PANEL_PORT=$PANEL_PORT"
    )
    local name
    for name in IOT_ENDPOINT IOT_PORT BACKEND_URL BENCH_BUILDING PANEL_LATCHING VEN_WEB_VENDOR VEN_EXTRA_OPERATORS VEN_TEST_ARGS VEN_LONG_FUZZ VEN_FUZZ_SEED PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
                PIP_FIND_LINKS PIP_CERT PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK PIP_CONSTRAINT PIP_CONFIG_FILE PIP_RETRIES PIP_NO_INDEX \
                SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE HTTP_PROXY HTTPS_PROXY NO_PROXY \
                http_proxy https_proxy no_proxy NODE_EXTRA_CA_CERTS npm_config_cafile npm_config_registry; do
        if [ -n "${!name:-}" ]; then envs+=("$name=${!name}"); fi
    done
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$VEN_USER" -- env -i "${envs[@]}" "$@"
    else
        env "${envs[@]}" "$@"
    fi
}

svc_home() {
    if [ "$(id -u)" -eq 0 ]; then getent passwd "$VEN_USER" | cut -d: -f6; else printf '%s' "$HOME"; fi
}

ensure_packages() {
    local missing=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto mosquitto-clients)
    command -v rsync >/dev/null 2>&1 || missing+=(rsync)
    "$VEN_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    command -v npm >/dev/null 2>&1 || missing+=(npm)   # installs the web page's chart library (uPlot)
    if [ ${#missing[@]} -eq 0 ]; then
        info "Debian packages present (mosquitto, rsync, python3-venv, npm)"
        return
    fi
    step "Installing Debian packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing Debian packages ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' once, or run this as root"
        sudo="sudo"
    fi
    local out="${TMPDIR:-/tmp}/ven-apt.$$.log"
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
        local why
        why="$(grep -E '^(E|W):' "$out" | tail -n 1 | cut -c1-240)"
        rm -f "$out"
        die "cannot install the Debian packages ${missing[*]} from the apt repositories: ${why:-apt-get failed}; fix the network or /etc/apt/sources.list, or install them by hand, then run start again"
    fi
    rm -f "$out"
    note_change "installed ${missing[*]}"
    # Debian enables a system-wide mosquitto on port 1883; we run our own, so leave it alone
    # but make sure it does not hold our TLS port.
}

ensure_user() {
    if [ "$(id -u)" -ne 0 ]; then return; fi
    if ! id "$VEN_USER" >/dev/null 2>&1; then
        step "Creating service user '$VEN_USER' (VOLTTRON refuses to run as root)"
        useradd --system --create-home --home-dir "$VEN_ROOT/home" --shell /bin/bash "$VEN_USER"
        note_change "created user $VEN_USER"
    fi
    install -d -o "$VEN_USER" -g "$VEN_USER" -m 0750 "$VEN_ROOT"
}

ensure_dirs() {
    local d
    for d in "$VEN_ROOT" "$VEN_ROOT/log" "$VEN_ROOT/run" "$VEN_ROOT/tmp" "$BROKER_DIR" "$DEVICE_DIR" "$CLOUD_DIR" "$RUNTIME_CERTS"; do
        if [ "$(id -u)" -eq 0 ]; then
            install -d -o "$VEN_USER" -g "$VEN_USER" "$d"
        else
            mkdir -p "$d"
        fi
    done
    chmod 0700 "$RUNTIME_CERTS"
}

# The service user runs a copy of the sources: a root checkout is often unreadable to it.
sync_sources() {
    mkdir -p "$VEN_SRC"
    if [ "$(cd "$VEN_SRC" && pwd -P)" = "$(cd "$VEN_REPO" && pwd -P)" ]; then return; fi   # running from the copy
    local updated
    updated="$(rsync -a --delete --itemize-changes --exclude .git --exclude 'certs/*' --exclude '__pycache__' \
        --exclude '.pytest_cache' --exclude '.hypothesis' --exclude 'tests/artifacts' --exclude 'bench/results/' \
        --exclude '*.egg-info' --exclude 'dist/' "$VEN_REPO/" "$VEN_SRC/" | grep -c '^[<>ch*]' || true)"
    if [ "$(id -u)" -eq 0 ]; then chown -R "$VEN_USER:$VEN_USER" "$VEN_SRC"; fi
    if [ "${updated:-0}" -gt 0 ]; then note_change "sources copied ($updated file(s) new or changed)"; fi
}

requirements_stamp() {
    cat "$VEN_REPO/requirements.txt" "$VEN_REPO/config/vhome/poetry.lock" "$VEN_REPO/common/pyproject.toml" "$VEN_REPO/building_device/pyproject.toml" \
        "$VEN_REPO/local_backend/pyproject.toml" \
        | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local stamp_file="$VENV/.ven-requirements" want lacking=""
    want="$(requirements_stamp)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$want" ]; then
        # Same lock as last time: is the venv still exactly it? (a package removed or changed by hand, or
        # by anything that resolved on its own, is put back here, not found later by an agent that crashes)
        lacking="$(as_svc "$VENV/bin/python" "$VEN_SRC/common/ven_common/lockset.py" check 2>/dev/null || echo "(check failed)")"
        as_svc "$VENV/bin/python" -c 'import ven_common, building_device, local_backend' >/dev/null 2>&1 \
            || lacking="$lacking the project's packages"
        if [ -z "$lacking" ]; then
            info "venv up to date ($VENV)"
            return
        fi
        lacking="$(printf '%s' "$lacking" | tr '\n' ' ')"
        step "The venv differs from the lock (${lacking% }): installing the locked versions"
    else
        step "Creating the venv with the locked versions ($VENV; about 40 s on a cold cache)"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        as_svc "$VEN_PYTHON" -m venv "$VENV"
    fi
    local out="$VEN_ROOT/tmp/pip-install.log"
    # requirements.txt is the lock's export with hashes: pip installs exactly those files (hash-checked).
    if ! as_svc "$VENV/bin/pip" install -q --disable-pip-version-check -r "$VEN_SRC/requirements.txt" >"$out" 2>&1; then
        pip_failed "$out" "${lacking:-the locked packages of requirements.txt}"
    fi
    if ! as_svc "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$VEN_SRC/common" \
            -e "$VEN_SRC/building_device" -e "$VEN_SRC/local_backend" >"$out" 2>&1; then
        pip_failed "$out" "the project's packages (common, building_device, local_backend)"
    fi
    as_svc "$VENV/bin/python" -c 'import volttron.client, paho.mqtt, pymodbus, fastapi, uvicorn, ven_common.contract, building_device.panel, local_backend.api' \
        || die "the venv at $VENV is incomplete after installing: delete it (rm -rf $VENV) and run ./scripts/ven_control.sh start again"
    as_svc bash -c "printf %s $want > $stamp_file"
    if [ -n "$lacking" ]; then
        note_change "installed the venv's missing ${lacking% }"
    else
        note_change "venv (re)built with the locked versions"
    fi
}

# pip failed: one line naming what could not be installed, from which index, and pip's own reason.
pip_failed() {   # log file, what was being installed
    local index why probe missing
    index="$(as_svc "$VENV/bin/python" "$VEN_SRC/common/ven_common/lockset.py" index 2>/dev/null || true)"
    probe="${index:-}"
    [ -n "$index" ] || index="the index of the pip configuration"
    # pip often says only "No matching distribution": ask the index itself whether it answers.
    why="$([ -z "$probe" ] || as_svc "$VENV/bin/python" -c '
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/pip/", timeout=10).close()
except urllib.error.HTTPError:
    pass  # it answered: reachable
except Exception as exc:
    print("the index is unreachable (%s)" % (getattr(exc, "reason", None) or exc))
' "$probe" 2>/dev/null || true)"
    if [ -z "$why" ]; then
        # The index answers but no longer has a locked version (deleted; a yanked one still installs when pinned).
        missing="$(grep -oE 'No matching distribution found for [^ ;]+' "$1" | tail -n 1 | awk '{print $NF}')"
        if [ -n "$missing" ]; then
            die "the locked $missing can no longer be had from $index: refresh the lock (./scripts/ven_control.sh refresh-lock), run ./scripts/run_tests.sh and commit config/vhome/ and requirements.txt"
        fi
        missing="$(grep -A2 -E 'DO NOT MATCH THE HASHES' "$1" | grep -oE '^ *[A-Za-z0-9._-]+==[^ ]+' | head -n 1 | tr -d ' ')"
        if [ -n "$missing" ]; then
            die "$missing from $index does not match the hashes in requirements.txt (a different file than the one locked): use an index that serves the original files, or refresh the lock (./scripts/ven_control.sh refresh-lock)"
        fi
        why="$(grep -E '^ERROR' "$1" | tail -n 1 | cut -c1-240)"
    fi
    die "cannot install $2 into $VENV from the Python package index $index: ${why:-see $1}; fix the network or PIP_INDEX_URL (or pip.conf) and run ./scripts/ven_control.sh start again"
}

# VOLTTRON's first start runs `poetry init` + `poetry add` of the whole venv against test-pypi, and every
# `vctl install` resolves the VOLTTRON_HOME poetry project: seeded from the locked set (config/vhome), poetry finds
# every package locked at the venv's version and changes none. Checked on every start: a project whose lock
# drifted (an older seed, a `vctl remove`) is re-seeded, keeping what vctl added to it.
seed_volttron_home() {
    local home="$1" out
    as_svc mkdir -p "$home"
    out="$(as_svc "$VENV/bin/python" "$VEN_SRC/common/ven_common/lockset.py" seed "$home")" \
        || die "cannot seed the VOLTTRON_HOME project in $home from config/vhome (above); run ./scripts/ven_control.sh start again after fixing it"
    if [ -n "$out" ]; then
        info "$out"
        note_change "$out"
    fi
}

# The platform's web service serves the VEN's page. VOLTTRON reads [web] only when it starts, so
# this runs before the platform starts: bind http://127.0.0.1:$WEB_PORT (WEB_BIND=0.0.0.0 to serve
# other hosts), a web-secret-key generated once (config made 0600), and the page's operator token
# ($VOLTTRON_HOME/ven_web_token, 0600).
ensure_web_config() {
    local bind="http://${WEB_BIND:-127.0.0.1}:$WEB_PORT" rc=0
    as_svc python -m ven_common.web_conf --vhome "$VOLTTRON_HOME" --bind "$bind" --token || rc=$?
    case "$rc" in
        0) ;;
        10) info "web service enabled: $bind (the [web] section of $VOLTTRON_HOME/config)" ;;
        *) die "could not write the [web] section of $VOLTTRON_HOME/config (exit $rc)" ;;
    esac
}

# Headless Chromium for the web page's test; big, so only test runs install it.
ensure_test_browser() {
    if command -v chromium >/dev/null 2>&1; then return; fi
    if [ "$(id -u)" -ne 0 ]; then
        info "chromium missing: the web page test will be skipped ('sudo apt-get install chromium' to run it)"
        return
    fi
    step "Installing chromium (headless browser for the web page test)"
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
        || info "could not install chromium: the web page test will be skipped"
}

# Alive and not a zombie: a killed process whose parent is gone may stay a zombie here (PID 1 of
# a container does not always reap), and `kill -0` would call it running.
proc_alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

platform_pid() {
    local pid
    pid="$(cat "$VOLTTRON_HOME/VOLTTRON_PID" 2>/dev/null || true)"
    # Ours only if that PID runs with this VOLTTRON_HOME (a PID reused after a crash is not).
    if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "VOLTTRON_HOME=$VOLTTRON_HOME"; then
        printf '%s' "$pid"
    fi
}

vctl_svc() {
    as_svc bash -c 'cd "$VOLTTRON_HOME" && exec vctl "$@"' vctl "$@"
}

platform_up() {
    [ -n "$(platform_pid)" ] && vctl_svc status >/dev/null 2>&1
}
