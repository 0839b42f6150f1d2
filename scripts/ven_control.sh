#!/bin/bash
# Unified VEN control: start | stop | status | send-event | restore | shadow | telemetry | logs | register
# Exit codes: 0 ok, 1 failure, 2 usage error, 3 not running (status/stop), 4 broker or cloud unreachable.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The cloud side: with no IOT_ENDPOINT the local broker stands in for AWS IoT Core and a Device
# Shadow service stand-in runs beside it; with no BACKEND_URL the local backend stand-in runs too
# and BACKEND_URL points at it.
BACKEND_PORT="${BACKEND_PORT:-8000}"
LOCAL_BACKEND=0
if [ -z "${BACKEND_URL:-}" ] && [ -z "${IOT_ENDPOINT:-}" ]; then
    LOCAL_BACKEND=1
    BACKEND_URL="http://127.0.0.1:$BACKEND_PORT"
fi

usage() {
    cat <<EOF
usage: ven_control.sh <command> [options]

  start        bring up what is missing: packages, service user, venv, dev PKI, local AWS IoT
               stand-in (mosquitto, mTLS, per-thing ACL), the building panel (Modbus TCP device),
               VOLTTRON platform, driver, VenAgent, bridge; leaves what runs alone
  stop         stop agents, platform and broker; leaves no processes behind
  status       platform, agents, broker and bridge connection state
  send-event   --shed-kw KW --duration SEC [--event-id ID] [--start-ts EPOCH] [--local]
  restore      [--local]   end the active event and restore every circuit
  shadow       print the VEN's shadow (the seed's JSON) [--full] [--local]
  telemetry    follow volttron/metering live (Ctrl-C to stop) [--count N]
  logs         follow the platform and agent log ($VEN_LOG)
  register     register this VEN with BACKEND_URL (POST /api/vens/) through the bridge [--direct: from here]
  backend      the backend: vens | events | readings | create-event --shed-kw KW --duration S [--start-in S]
               | cancel-event ID   (events are dispatched by its EventCommandService when they become active)
  doctor       the operations guide's troubleshooting as checks: ok, or the cause and the fix
  refresh-lock newer versions on purpose: re-resolve config/vhome's roots (poetry, the index of your pip
               configuration), rewrite config/vhome/poetry.lock and requirements.txt, print the difference
               [--keep: only add new roots]; then start, run the tests and commit

Environment: IOT_THING_NAME (default volttron_thing), IOT_ENDPOINT (real AWS IoT; no local broker),
BACKEND_URL, WEB_PORT (default 8080), BROKER_PORT (default 8883), VEN_BUILDING (modbus | simbuilding),
PANEL_PORT (default 5020), PANEL_LATCHING (1: relays kept across the panel's own restart), VEN_ROOT, VEN_USER.
Run '<command> --help' for a command's options.
EOF
}

# A pid file names our process only while that PID runs what we started there (its command line
# carries this system's own paths or port): a PID reused by another program after a crash or a
# reboot is not ours, is never signalled, and the part is started again. A process of ours whose
# pid file was lost is found by the same mark and adopted, not started twice.
owned_pid() {   # pid file, mark (a fixed string of our process's command line)
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$2"; then
        printf '%s' "$pid"
        return
    fi
    local regex
    regex="$(printf '%s' "$2" | sed 's/[][\.*^$+?(){}|]/\\&/g')"
    pid="$(pgrep -o -f -- "$regex" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -w "$(dirname "$1")" ]; then
        printf '%s' "$pid" > "$1"
        if [ "$(id -u)" -eq 0 ]; then chown "$VEN_USER:$VEN_USER" "$1" 2>/dev/null || true; fi
    fi
    printf '%s' "$pid"
}
BROKER_MARK="mosquitto -c $BROKER_DIR/mosquitto.conf"
SHADOW_MARK="local_backend.shadow_service --dir $CLOUD_DIR/shadows"
BACKEND_MARK="local_backend --db $CLOUD_DIR/backend.sqlite"
DEVICE_MARK="building_device --registry $VEN_SRC/config/driver/panel.csv --port $PANEL_PORT"
broker_pid() { owned_pid "$BROKER_DIR/mosquitto.pid" "$BROKER_MARK"; }

# A port someone else holds: one line naming the program (psutil, in the venv).
port_taken() {   # port, whose port it is, the variable that moves it
    local owner
    owner="$(as_svc python "$VEN_SRC/scripts/port_owner.py" "$1" 2>/dev/null)" || return 0
    die "port $1 ($2) is already in use by $owner: stop that program or set $3 to a free port"
}

wait_port() {
    local port="$1" tries="${2:-100}"
    for _ in $(seq "$tries"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

ensure_pki() {
    local certs="$VEN_REPO/certs"
    if [ -n "${IOT_ENDPOINT:-}" ]; then
        local f
        for f in ca.pem client.crt client.key; do
            [ -f "$certs/$f" ] || die "IOT_ENDPOINT is set but $certs/$f is missing: put the AWS IoT root CA and the thing's certificate and key there (see certs/README.md)"
        done
        info "using the AWS IoT certificates in certs/ for endpoint $IOT_ENDPOINT"
    else
        local before
        before="$(cat "$certs"/*.crt "$certs"/*.pem 2>/dev/null | sha256sum || true)"
        "$VENV/bin/python" -m ven_common.pki --out "$certs" --thing "$IOT_THING_NAME" >/dev/null
        if [ "$(cat "$certs"/*.crt "$certs"/*.pem 2>/dev/null | sha256sum || true)" != "$before" ]; then
            info "dev PKI in certs/ (CA, broker cert, thing '$IOT_THING_NAME', cloud_backend): generated"
            note_change "generated the dev PKI"
        fi
    fi
    # The service user gets its own copy: the checkout may be unreadable to it.
    local f
    for f in "$certs"/*.pem "$certs"/*.crt "$certs"/*.key; do
        [ -f "$f" ] || continue
        install -m 0600 "$f" "$RUNTIME_CERTS/$(basename "$f")"
        if [ "$(id -u)" -eq 0 ]; then chown "$VEN_USER:$VEN_USER" "$RUNTIME_CERTS/$(basename "$f")"; fi
    done
}

start_broker() {
    if [ -n "${IOT_ENDPOINT:-}" ]; then
        info "IOT_ENDPOINT=$IOT_ENDPOINT: no local broker"
        return
    fi
    if [ -n "$(broker_pid)" ]; then
        info "local broker already running (pid $(broker_pid), port $BROKER_PORT)"
        return
    fi
    step "Starting the local AWS IoT stand-in: mosquitto, mTLS, per-thing ACL, 127.0.0.1:$BROKER_PORT"
    note_change "started the broker"
    as_svc mkdir -p "$BROKER_DIR/data"
    port_taken "$BROKER_PORT" "the local broker's" BROKER_PORT
    as_svc python -m ven_common.broker_conf --port "$BROKER_PORT" --pki "$RUNTIME_CERTS" --dir "$BROKER_DIR" >/dev/null
    as_svc bash -c 'setsid mosquitto -c "$1/mosquitto.conf" >>"$1/mosquitto.out" 2>&1 </dev/null & echo $! > "$1/mosquitto.pid"' _ "$BROKER_DIR" </dev/null >/dev/null 2>&1
    wait_port "$BROKER_PORT" 100 || die "mosquitto did not open port $BROKER_PORT: see $BROKER_DIR/mosquitto.log"
}

shadow_pid() { owned_pid "$CLOUD_DIR/shadow.pid" "$SHADOW_MARK"; }
backend_pid() { owned_pid "$CLOUD_DIR/backend.pid" "$BACKEND_MARK"; }

# The cloud side's stand-ins (only with the local broker): the Device Shadow service, and the
# backend (registration, EventCommandService, telemetry ingestion) when BACKEND_URL is unset.
start_cloud_standins() {
    if [ -n "${IOT_ENDPOINT:-}" ]; then return; fi
    if [ -z "$(shadow_pid)" ]; then
        step "Starting the Device Shadow service stand-in (beside the local broker)"
        note_change "started the shadow service"
        as_svc bash -c 'cd "$1" || exit 1; setsid python -u -m local_backend.shadow_service --dir "$1/shadows" --mqtt-port "$2" --certs "$3" >>"$1/shadow.log" 2>&1 </dev/null & echo $! > "$1/shadow.pid"' _ \
            "$CLOUD_DIR" "$BROKER_PORT" "$RUNTIME_CERTS" </dev/null >/dev/null 2>&1
    fi
    if [ "$LOCAL_BACKEND" = 1 ] && [ -z "$(backend_pid)" ]; then
        port_taken "$BACKEND_PORT" "the local backend's" "BACKEND_PORT (or BACKEND_URL to your own backend)"
        step "Starting the local backend stand-in on $BACKEND_URL (registration, events, telemetry ingestion)"
        note_change "started the local backend"
        as_svc bash -c 'cd "$1" || exit 1; setsid python -m local_backend --db "$1/backend.sqlite" --port "$2" --mqtt-port "$3" --certs "$4" >>"$1/backend.log" 2>&1 </dev/null & echo $! > "$1/backend.pid"' _ \
            "$CLOUD_DIR" "$BACKEND_PORT" "$BROKER_PORT" "$RUNTIME_CERTS" </dev/null >/dev/null 2>&1
        wait_port "$BACKEND_PORT" 150 || die "the local backend did not open port $BACKEND_PORT: see $CLOUD_DIR/backend.log"
    fi
}

stop_owned() {   # pid, pid file, name
    local pid="$1"
    [ -n "$pid" ] || return 1
    step "Stopping the $3 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$2"
}

device_pid() { owned_pid "$DEVICE_DIR/device.pid" "$DEVICE_MARK"; }

# The building's Modbus panel runs in its own process, before the platform (the driver reads it).
# Its relays survive the VEN's crashes; PANEL_LATCHING=1 also keeps them across its own restart.
start_device() {
    if [ "$VEN_BUILDING" != modbus ]; then return; fi
    if [ -n "$(device_pid)" ]; then
        info "building panel already running (pid $(device_pid), modbus://127.0.0.1:$PANEL_PORT)"
        return
    fi
    port_taken "$PANEL_PORT" "the building panel's Modbus port" PANEL_PORT
    step "Starting the building panel: Modbus TCP device on 127.0.0.1:$PANEL_PORT"
    note_change "started the building panel"
    local latch=()
    if [ "${PANEL_LATCHING:-0}" = 1 ]; then latch=(--state-file "$DEVICE_DIR/relays.json"); fi
    as_svc bash -c 'cd "$1" || exit 1; setsid python -m building_device --registry "$2" --port "$3" "${@:4}" >>"$1/device.log" 2>&1 </dev/null & echo $! > "$1/device.pid"' _ \
        "$DEVICE_DIR" "$VEN_SRC/config/driver/panel.csv" "$PANEL_PORT" "${latch[@]}" </dev/null >/dev/null 2>&1
    wait_port "$PANEL_PORT" 100 || die "the building panel did not open port $PANEL_PORT: see $DEVICE_DIR/device.log"
}

start_platform() {
    if platform_up; then
        info "VOLTTRON platform already running (pid $(platform_pid))"
        return
    fi
    local alive
    alive="$(platform_pid)"
    if [ -n "$alive" ]; then
        # Running but not answering: still starting, or hung. Give it a while, never a second platform.
        local _
        for _ in $(seq 60); do platform_up && break; sleep 0.5; done
        if platform_up; then
            info "VOLTTRON platform answered after a wait (pid $alive)"
            return
        fi
        die "the VOLTTRON platform (pid $alive) runs but does not answer vctl after 30 s: run ./scripts/ven_control.sh stop, then start"
    fi
    end_orphans
    port_taken "$WEB_PORT" "the web page's" WEB_PORT
    # The platform dies at once on a log it cannot write (e.g. left by another user's run): say so.
    if ! as_svc bash -c 'if [ -e "$1" ]; then [ -w "$1" ]; else [ -w "$(dirname "$1")" ]; fi' _ "$VEN_LOG"; then
        local owner
        owner="$(stat -c %U "$VEN_LOG" 2>/dev/null || stat -c %U "$(dirname "$VEN_LOG")" 2>/dev/null || echo '?')"
        die "cannot write $VEN_LOG (owned by $owner) as $VEN_USER: set VEN_LOG to another file or remove that one"
    fi
    step "Starting the VOLTTRON platform (VOLTTRON_HOME=$VOLTTRON_HOME, log $VEN_LOG)"
    note_change "started the platform"
    ensure_web_config
    # A background job of a non-interactive shell has SIGINT ignored, and VOLTTRON then never
    # stops cleanly; the launcher resets SIGINT before exec (dispositions survive exec).
    # VOLTTRON refuses to start while VOLTTRON_PID names a live PID, even a zombie or another
    # program that got the dead platform's PID: that file is stale once the platform is not ours.
    if [ -f "$VOLTTRON_HOME/VOLTTRON_PID" ]; then
        info "removing the stale $VOLTTRON_HOME/VOLTTRON_PID (pid $(cat "$VOLTTRON_HOME/VOLTTRON_PID" 2>/dev/null) is not this platform)"
        as_svc rm -f "$VOLTTRON_HOME/VOLTTRON_PID"
    fi
    local out_before log_before
    out_before="$(stat -c %s "$VEN_ROOT/log/volttron.out" 2>/dev/null || echo 0)"
    log_before="$(stat -c %s "$VEN_LOG" 2>/dev/null || echo 0)"
    as_svc bash -c 'cd "$VOLTTRON_HOME" || exit 1; setsid python "$1" volttron -v -l "$2" >>"$3" 2>&1 </dev/null & echo $! > "$4"' _ \
        "$VEN_SRC/scripts/sigint_exec.py" "$VEN_LOG" "$VEN_ROOT/log/volttron.out" "$VEN_ROOT/run/platform.launch.pid" \
        </dev/null >/dev/null 2>&1
    local i launched
    launched="$(cat "$VEN_ROOT/run/platform.launch.pid" 2>/dev/null || true)"
    for i in $(seq 360); do
        if platform_up; then
            info "platform up after $((i / 2)) s"
            return
        fi
        if [ -n "$launched" ] && ! proc_alive "$launched"; then
            # Died while starting: its own last words (this launch's only), not a 180 s wait.
            local why
            why="$(tail -c +"$((out_before + 1))" "$VEN_ROOT/log/volttron.out" 2>/dev/null | grep -v -i -E 'warn|^\s*$' | tail -n 1 | cut -c1-300 || true)"
            if [ -z "$why" ]; then
                why="$(tail -c +"$((log_before + 1))" "$VEN_LOG" 2>/dev/null | grep -E 'ERROR|Error|Exception|refus' | tail -n 1 | cut -c1-300 || true)"
            fi
            die "the platform exited while starting: ${why:-no error logged} (see $VEN_ROOT/log/volttron.out)"
        fi
        sleep 0.5
    done
    die "the platform did not come up in 180 s: see $VEN_LOG and $VEN_ROOT/log/volttron.out"
}

# Agents of a platform that died (killed, crashed) keep running and would reconnect to the next
# platform beside the ones it starts: two VENs driving one building. End them first. They are the
# processes the platform started for this VOLTTRON_HOME (it gives each AGENT_UUID; the driver's
# protocol proxies inherit it), so an operator's own tool carrying VOLTTRON_HOME is left alone.
platform_children() {
    local p
    for p in $(pgrep -u "$VEN_USER" 2>/dev/null || true); do
        [ "$p" != "$$" ] || continue
        tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" \
            | awk -v home="VOLTTRON_HOME=$VOLTTRON_HOME" '$0 == home {h=1} /^AGENT_UUID=/ {a=1} END {exit !(h && a)}' \
            && printf '%s\n' "$p"
    done
    return 0
}
end_orphans() {
    local p pids
    pids="$(platform_children)"
    [ -n "$pids" ] || return 0
    local n
    n="$(printf '%s\n' "$pids" | wc -l)"
    info "ending $n agent process(es) left by a platform that died (they would join the new one twice)"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do [ -n "$(platform_children)" ] || break; sleep 0.1; done
    for p in $(platform_children); do kill -KILL "$p" 2>/dev/null || true; done
    note_change "ended $n orphaned agent process(es)"
}

# Convergent: every step checks its part and brings up only what is missing, so a second `start`
# changes nothing and a broker that died is restarted without touching the platform or the agents
# (a VEN restart mid-event would re-apply its shed, but is still a needless interruption).
cmd_start() {
    case "${1:-}" in -h|--help) echo "usage: ven_control.sh start   (no options; see --help of the script)"; return 0;; esac
    local t0=$SECONDS
    step "Checking Debian packages"
    ensure_packages
    ensure_user
    ensure_dirs
    sync_sources
    ensure_venv
    ensure_pki
    start_broker
    start_cloud_standins
    start_device
    seed_volttron_home "$VOLTTRON_HOME"
    start_platform
    step "Checking agents, libraries and configs (install_agents.sh)"
    local changes_file="$VEN_ROOT/tmp/start-changes"
    as_svc rm -f "$changes_file"
    as_svc env VEN_CHANGES_FILE="$changes_file" bash "$VEN_SRC/install_agents.sh"
    local line
    while IFS= read -r line; do [ -z "$line" ] || note_change "$line"; done < <(as_svc cat "$changes_file" 2>/dev/null || true)
    # An agent just (re)started answers RPC a moment later: wait for the bridge before judging.
    local _
    for _ in $(seq 30); do
        as_svc python "$VEN_SRC/scripts/ven_rpc.py" ven.bridge get_status --timeout 3 >/dev/null 2>&1 && break
        sleep 1
    done
    step "Up in $((SECONDS - t0)) s"
    local rc=0
    cmd_status || rc=$?
    if [ ${#VEN_CHANGES[@]} -eq 0 ]; then
        echo "start: nothing changed (everything was already running)"
    else
        local joined
        joined="$(printf '%s; ' "${VEN_CHANGES[@]}")"
        echo "start: changed: ${joined%; }"
    fi
    return $rc
}

cmd_stop() {
    case "${1:-}" in -h|--help) echo "usage: ven_control.sh stop"; return 0;; esac
    local any=0 pid
    pid="$(platform_pid)"
    if [ -n "$pid" ]; then
        any=1
        step "Stopping the VOLTTRON platform (pid $pid)"
        vctl_svc shutdown --platform >/dev/null 2>&1 || kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 100); do proc_alive "$pid" || break; sleep 0.2; done
        if proc_alive "$pid"; then
            info "platform still running after 20 s: sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
    # The stand-ins by their PIDs (they carry VOLTTRON_HOME too, so the sweep below would end them unnamed).
    if stop_owned "$(device_pid)" "$DEVICE_DIR/device.pid" "building panel"; then any=1; fi
    if stop_owned "$(backend_pid)" "$CLOUD_DIR/backend.pid" "local backend"; then any=1; fi
    if stop_owned "$(shadow_pid)" "$CLOUD_DIR/shadow.pid" "shadow service"; then any=1; fi
    # Agents orphaned by an unclean platform exit (started by it: AGENT_UUID in their environment).
    local p
    for p in $(platform_children); do kill -TERM "$p" 2>/dev/null && any=1 || true; done
    pid="$(broker_pid)"
    if [ -n "$pid" ]; then
        any=1
        step "Stopping the local broker (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
        rm -f "$BROKER_DIR/mosquitto.pid"
    fi
    if [ "$any" -eq 0 ]; then
        info "nothing was running"
    else
        step "Stopped"
    fi
}

cmd_status() {
    case "${1:-}" in -h|--help) echo "usage: ven_control.sh status   (exit 0 when everything runs, 3 otherwise)"; return 0;; esac
    local rc=0
    if platform_up; then
        printf 'platform   running (pid %s, VOLTTRON_HOME=%s)\n' "$(platform_pid)" "$VOLTTRON_HOME"
        # Each agent the system needs, running; otherwise what is wrong and the command that fixes it.
        vctl_svc --json status 2>/dev/null | "$VENV/bin/python" -c '
import json, sys
try:
    rows = json.load(sys.stdin)
except ValueError:
    rows = []
rows = list(rows.values() if isinstance(rows, dict) else rows)
bad = 0
for r in rows:
    print("agent      %-16s %-24s %s" % (r.get("identity", "?"), r.get("status", "?"), r.get("name", "")))
seen = {r.get("identity"): str(r.get("status", "")) for r in rows}
for identity in sys.argv[1:]:
    if identity not in seen:
        print("agent      %-16s not installed: ./scripts/ven_control.sh start installs it" % identity)
        bad = 1
    elif "running" not in seen[identity]:
        print("agent      %-16s not running (%s): ./scripts/ven_control.sh start starts it" % (identity, seen[identity] or "stopped"))
        bad = 1
sys.exit(3 if bad else 0)
' platform.driver ven.agent ven.bridge || rc=3
    else
        echo "platform   not running: ./scripts/ven_control.sh start starts it"
        rc=3
    fi
    if [ -n "${IOT_ENDPOINT:-}" ]; then
        echo "broker     AWS IoT endpoint $IOT_ENDPOINT (no local broker)"
    elif [ -n "$(broker_pid)" ]; then
        echo "broker     running (pid $(broker_pid), mqtts://127.0.0.1:$BROKER_PORT)"
    else
        echo "broker     not running: ./scripts/ven_control.sh start starts it"
        rc=3
    fi
    if [ -z "${IOT_ENDPOINT:-}" ]; then
        if [ -n "$(shadow_pid)" ]; then
            echo "shadow     Device Shadow service stand-in running (pid $(shadow_pid))"
        else
            echo "shadow     Device Shadow service stand-in not running (./scripts/ven_control.sh start brings it up)"
            rc=3
        fi
    fi
    if [ "$LOCAL_BACKEND" = 1 ]; then
        if [ -n "$(backend_pid)" ]; then
            echo "backend    local backend stand-in running (pid $(backend_pid), $BACKEND_URL)"
        else
            echo "backend    local backend stand-in not running (./scripts/ven_control.sh start brings it up)"
            rc=3
        fi
    elif [ -n "${BACKEND_URL:-}" ]; then
        echo "backend    $BACKEND_URL"
    fi
    if [ "$VEN_BUILDING" = modbus ]; then
        if [ -n "$(device_pid)" ]; then
            echo "device     building panel running (pid $(device_pid), modbus://127.0.0.1:$PANEL_PORT)"
        else
            echo "device     building panel not running (./scripts/ven_control.sh start brings it up)"
            rc=3
        fi
    else
        echo "device     simbuilding (in the driver's process)"
    fi
    if platform_up; then
        if ! as_svc python "$VEN_SRC/scripts/ven_rpc.py" ven.bridge get_status --format bridge 2>/dev/null; then
            echo "bridge     no answer from ven.bridge: ./scripts/ven_control.sh start (re)starts it; its log: ./scripts/ven_control.sh logs"
            rc=3
        fi
        # The command path end to end: the bridge answering RPC is not enough (a bridge without its grants
        # answers every command "rejected"). With the dev PKI's cloud_backend identity, send a status command as
        # the backend does; its ack must come back accepted.
        if [ -f "$VEN_REPO/certs/cloud_backend.crt" ]; then
            BACKEND_URL="${BACKEND_URL:-}" BROKER_PORT="$BROKER_PORT" cloud_tool doctor.py --command-path || rc=3
        else
            echo "command    not checked from here (no certs/cloud_backend.crt): send a status command from the AWS IoT console's MQTT client"
        fi
        local web_url
        web_url="$(sed -n 's/^bind-web-address *= *//p' "$VOLTTRON_HOME/config" 2>/dev/null | head -n 1)"
        if [ -n "$web_url" ]; then
            echo "web        ${web_url%/}/  (send/restore there need the operator token: $VOLTTRON_HOME/ven_web_token, 0600, owner $VEN_USER)"
        fi
    fi
    return $rc
}

cmd_logs() {
    case "${1:-}" in -h|--help) echo "usage: ven_control.sh logs   (follows $VEN_LOG)"; return 0;; esac
    [ -f "$VEN_LOG" ] || die "no log at $VEN_LOG: is the VEN started? run ./scripts/ven_control.sh start"
    exec tail -n 50 -F "$VEN_LOG"
}

# The MQTT verbs act as the backend does: the cloud_backend identity on the broker.
cloud_tool() {
    local tool="$1"; shift
    [ -x "$VENV/bin/python" ] || die "not set up yet: run ./scripts/ven_control.sh start"
    "$VENV/bin/python" "$VEN_REPO/scripts/$tool" "$@"
}

has_arg() {
    local want="$1" a
    shift
    for a in "$@"; do [ "$a" != "$want" ] || return 0; done
    return 1
}

# VIP RPC (--local, register through the bridge) needs VOLTTRON_HOME's credential store: only the
# service user can read it.
svc_tool() {
    local tool="$1"; shift
    [ -x "$VENV/bin/python" ] || die "not set up yet: run ./scripts/ven_control.sh start"
    as_svc python "$VEN_SRC/scripts/$tool" "$@"
}

main() {
    local verb="${1:-}" a
    [ $# -gt 0 ] && shift
    for a in "$@"; do
        # What a shell makes of `\ ` before a comment (the guide's Quick Reference prints one).
        if [ -z "${a//[[:space:]]/}" ]; then
            die "$verb got an argument that is only spaces: a backslash followed by spaces or a comment does not continue the line in a shell, so the options on the next line were not passed; put all of the command's options on one line" 2
        fi
    done
    case "$verb" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        send-event|restore)
            local op=event; [ "$verb" = send-event ] || op=restore
            if has_arg --local "$@"; then svc_tool ven_cmd_publish.py --op "$op" "$@"
            else cloud_tool ven_cmd_publish.py --op "$op" --wait-ack "$@"; fi ;;
        shadow) if has_arg --local "$@"; then svc_tool ven_shadow.py "$@"; else cloud_tool ven_shadow.py "$@"; fi ;;
        telemetry) cloud_tool ven_telemetry_listen.py "$@" ;;
        register) if has_arg --direct "$@"; then cloud_tool register_ven.py "$@"; else svc_tool register_ven.py --via-bridge "$@"; fi ;;
        backend) BACKEND_URL="$BACKEND_URL" cloud_tool backend_cli.py "$@" ;;
        doctor) BACKEND_URL="$BACKEND_URL" BROKER_PORT="$BROKER_PORT" cloud_tool doctor.py "$@" ;;
        refresh-lock)
            [ -x "$VENV/bin/poetry" ] || die "refresh-lock needs the venv's poetry: run ./scripts/ven_control.sh start first"
            PYTHONPATH="$VEN_REPO/common" "$VENV/bin/python" "$VEN_REPO/common/ven_common/lockset.py" refresh "$@" ;;
        -h|--help|help|"") usage; [ -n "$verb" ] ;;
        *) usage >&2; die "unknown command '$verb'" 2 ;;
    esac
}

main "$@"
