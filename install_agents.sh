#!/bin/bash
# Install or upgrade the VEN's libraries, configs and agents on a RUNNING VOLTTRON instance.
#   requires: VOLTTRON_HOME set, the platform venv active, not root, the platform running,
#             the thing's certificates in $VEN_CERTS (default: $VEN_ROOT/certs, else ./certs).
# Idempotent: what is installed is restarted (agents are installed editable, so a restart
# picks up new code); configs are re-stored.
set -o errexit -o pipefail -o nounset

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
THING="${IOT_THING_NAME:-volttron_thing}"
CERTS="${VEN_CERTS:-${VEN_ROOT:+$VEN_ROOT/certs}}"
CERTS="${CERTS:-$HERE/certs}"
# The building: "modbus" (default: the panel device, its own process, through the real VOLTTRON
# Modbus driver) or "simbuilding" (the in-process simulation). VEN_DEVICES lists the driver devices
# to configure (default: the building's own; the test suite configures both).
VEN_BUILDING="${VEN_BUILDING:-modbus}"
case "$VEN_BUILDING" in
    modbus) DEVICE_TOPIC="${VEN_DEVICE_TOPIC:-campus/building/panel}" ;;
    simbuilding) DEVICE_TOPIC="${VEN_DEVICE_TOPIC:-campus/building/sim}" ;;
    *) printf 'install_agents.sh: error: VEN_BUILDING must be modbus or simbuilding, got %s\n' "$VEN_BUILDING" >&2; exit 1 ;;
esac
VEN_DEVICES="${VEN_DEVICES:-$VEN_BUILDING}"
PANEL_PORT="${PANEL_PORT:-5020}"
# A building wired elsewhere (python -m building_device.campus --out DIR writes one): its
# driver-configs.tsv lists the driver's registries and device configs to store (name, file, csv|json),
# and its ven-agent.json is the VEN's config. It replaces the building's own device and circuits.
VEN_WIRING="${VEN_WIRING:-}"

die() { printf 'install_agents.sh: error: %s\n' "$*" >&2; exit 1; }
# vctl (rc38) prints gevent "Exception ignored" tracebacks at exit even on success: show its
# output only when it fails.
quiet() {
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [ $rc -ne 0 ]; then printf '%s\n' "$out" >&2; die "'$*' failed (exit $rc)"; fi
}
say() { printf '    %s\n' "$*"; }

[ "$(id -u)" -ne 0 ] || die "do not run as root: VOLTTRON refuses root. Run as the platform's user (./scripts/ven_control.sh start does this)"
[ -n "${VOLTTRON_HOME:-}" ] || die "VOLTTRON_HOME is not set: export VOLTTRON_HOME=<the platform's home> first"
[ -n "${VIRTUAL_ENV:-}" ] && command -v vctl >/dev/null 2>&1 || die "the platform venv is not active: source <venv>/bin/activate first"
for f in ca.pem client.crt client.key; do
    [ -f "$CERTS/$f" ] || die "missing certificate file $CERTS/$f: run ./scripts/ven_control.sh start (dev PKI) or put the AWS IoT files there (set VEN_CERTS to their folder)"
done
cd "$VOLTTRON_HOME"   # vctl writes ./myapp.log into its working directory
vctl status >/dev/null 2>&1 || die "no running platform at VOLTTRON_HOME=$VOLTTRON_HOME: start it first (./scripts/ven_control.sh start)"

status_json="$(vctl --json status 2>/dev/null || echo '{}')"

# What this script last installed, by content hash: a second run changes nothing that runs.
STAMPS="$VOLTTRON_HOME/ven-stamps"
mkdir -p "$STAMPS"
CHANGED=()
changed() { CHANGED+=("$1"); say "$1"; }
content_hash() {   # files and directories (recursively, sources only) -> one sha256
    python - "$@" <<'PY'
import hashlib, pathlib, sys
h = hashlib.sha256()
for arg in sys.argv[1:]:
    p = pathlib.Path(arg)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                                            and not f.name.endswith((".pyc", ".egg-info")) and ".egg-info" not in str(f))
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + b"\0" + f.read_bytes() + b"\0")
print(h.hexdigest())
PY
}
stamp_is() { [ "$(cat "$STAMPS/$1" 2>/dev/null)" = "$2" ]; }
stamp_set() { printf '%s' "$2" > "$STAMPS/$1"; }

lib_registered() { grep -q -i "$1" "$VOLTTRON_HOME/pyproject.toml" 2>/dev/null; }

# Libraries: the driver needs volttron-lib-tree (missing dependency of platform-driver rc9), and
# the simulated building is a driver interface installed like any other.
if ! lib_registered volttron-lib-tree; then
    quiet vctl install-lib volttron-lib-tree==2.0.0rc4
    changed "install-lib volttron-lib-tree==2.0.0rc4"
fi
if ! lib_registered volttron-lib-web; then
    quiet vctl install-lib volttron-lib-web==2.0.0rc7
    changed "install-lib volttron-lib-web==2.0.0rc7 (the platform's web service, for the VEN's page)"
fi
# The page's chart library, pinned, from the npm registry (never committed); one copy per VEN_ROOT.
WEB_VENDOR="${VEN_WEB_VENDOR:-${VEN_ROOT:-$VOLTTRON_HOME}/web-vendor}"
UPLOT_VERSION=1.6.32
if [ "$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$WEB_VENDOR/node_modules/uplot/package.json" 2>/dev/null)" != "$UPLOT_VERSION" ]; then
    say "npm install uplot@$UPLOT_VERSION into $WEB_VENDOR (chart library of the web page)"
    command -v npm >/dev/null 2>&1 || die "npm is missing: apt-get install npm (ven_control.sh start does), then run again"
    mkdir -p "$WEB_VENDOR"
    if ! npm install --prefix "$WEB_VENDOR" --no-audit --no-fund --no-save --no-update-notifier --loglevel=error \
            "uplot@$UPLOT_VERSION" >"$WEB_VENDOR/npm-install.log" 2>&1; then
        die "cannot install uplot@$UPLOT_VERSION from the npm registry $(npm config get registry 2>/dev/null): $(grep -E 'ERR' "$WEB_VENDOR/npm-install.log" | grep -v -E 'A complete log|^npm ERR! *$' | head -n 2 | tr '\n' ' ' | cut -c1-200); fix the network or npm_config_registry, then run start again"
    fi
    CHANGED+=("npm install uplot@$UPLOT_VERSION")
fi
if [ -n "$VEN_WIRING" ]; then
    [ -f "$VEN_WIRING/driver-configs.tsv" ] && [ -f "$VEN_WIRING/ven-agent.json" ] \
        || die "VEN_WIRING=$VEN_WIRING has no driver-configs.tsv and ven-agent.json: write it with python -m building_device.campus --out DIR"
    VEN_DEVICES="$VEN_DEVICES modbus"
fi
if [[ " $VEN_DEVICES " == *" modbus "* ]] && ! lib_registered volttron-lib-modbus-driver; then
    # pip-installed with the venv (requirements.txt): this only registers it with the platform.
    quiet vctl install-lib volttron-lib-modbus-driver==0.2.1rc1
    changed "install-lib volttron-lib-modbus-driver==0.2.1rc1 (the real VOLTTRON Modbus driver)"
fi
if ! lib_registered volttron-lib-simbuilding-driver; then
    quiet vctl install-lib "$HERE/simbuilding"
    changed "install-lib simbuilding (simulated building driver interface)"
fi

# Configs: stored only when what we would store changed (or is missing from the store), because
# re-storing a driver device config re-creates the device, and an operator's live change to the
# VEN's config stays until the project's own file changes.
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
python "$HERE/scripts/render_configs.py" --out "$rendered" --thing "$THING" --certs "$CERTS" --device "$DEVICE_TOPIC" \
    --panel-port "$PANEL_PORT"
store_config() {   # identity name file [--csv]
    local identity="$1" name="$2" file="$3" key hash
    key="config_$(printf '%s_%s' "$identity" "$name" | tr -c 'A-Za-z0-9._-' '_')"
    hash="$(content_hash "$file")"
    if stamp_is "$key" "$hash" && vctl config list "$identity" 2>/dev/null | grep -qxF "$name"; then
        return
    fi
    quiet vctl config store "$identity" "$name" "$file" ${4:-}
    stamp_set "$key" "$hash"
    changed "config store: $identity $name"
}
if [[ " $VEN_DEVICES " == *" simbuilding "* ]]; then
    store_config platform.driver simbuilding.csv "$HERE/config/driver/simbuilding.csv" --csv
    store_config platform.driver "devices/campus/building/sim" "$rendered/sim.config"
fi
if [ -n "$VEN_WIRING" ]; then
    # Registries first: a device config names its registry (config://...), which must exist.
    while IFS=$'\t' read -r name file kind; do
        [ -n "$name" ] || continue
        store_config platform.driver "$name" "$VEN_WIRING/$file" $([ "$kind" = csv ] && echo --csv)
    done < "$VEN_WIRING/driver-configs.tsv"
    python -c 'import json, sys; c = json.load(open(sys.argv[1])); c["thing_name"] = sys.argv[2]; json.dump(c, open(sys.argv[3], "w"), indent=2)' \
        "$VEN_WIRING/ven-agent.json" "$THING" "$rendered/ven-agent.json"
elif [[ " $VEN_DEVICES " == *" modbus "* ]]; then
    store_config platform.driver panel.csv "$HERE/config/driver/panel.csv" --csv
    store_config platform.driver "devices/campus/building/panel" "$rendered/panel.config"
fi
store_config ven.agent config "$rendered/ven-agent.json"
store_config ven.bridge config "$rendered/bridge.json"

agent_field() {   # identity field
    printf '%s' "$status_json" | python -c '
import json, sys
data = json.load(sys.stdin)
rows = data.values() if isinstance(data, dict) else data
print(next((str(r.get(sys.argv[2], "")) for r in rows if r.get("identity") == sys.argv[1]), ""))' "$1" "$2"
}

# Installed and running with the same code: left alone. Stopped: started. Code changed (agents are
# installed editable, so a restart runs it): restarted. Missing: installed.
ensure_agent() {
    local identity="$1" source="$2" code="$3" uuid state
    uuid="$(agent_field "$identity" agent_uuid)"
    state="$(agent_field "$identity" status)"
    if [ -z "$uuid" ]; then
        quiet vctl install "$source" --vip-identity "$identity" --enable --start --agent-start-time 2
        changed "installed $identity"
    elif ! stamp_is "agent_$identity" "$code"; then
        quiet vctl restart "$uuid"
        changed "restarted $identity (new code)"
    elif [[ "$state" != *running* ]]; then
        quiet vctl start "$uuid"
        if [[ "$state" =~ ^-?[0-9]+$ ]]; then state="stopped, exit $state"; fi
        changed "started $identity (was ${state:-not running})"
    fi
    stamp_set "agent_$identity" "$code"
}
ensure_agent platform.driver volttron-platform-driver==2.0.0rc9 \
    "volttron-platform-driver==2.0.0rc9 $(content_hash "$HERE/simbuilding/src")"

# The VEN's web page registers routes with platform.web and its state-changing RPCs are
# protected: both are authorizations, granted before the agent (re)starts.
VEN_PROTECTED_RPCS="handle_command send_event restore set_override apply_shadow_config"   # venagent/agent.py PROTECTED_RPCS
VEN_WEB_CAPABILITIES="platform.web.register_endpoint platform.web.unregister_all_agent_routes platform.web.register_path_route platform.web.get_web_root"
OPERATORS="$(echo ven.operator ${VEN_EXTRA_OPERATORS:-})"   # echo: one space between names, none at the end
# Judged on the grants the platform holds (authz.json), not on what this script last did: `vctl remove` of
# an agent deletes its grants, and an agent reinstalled without them answers every command AuthException.
authz_missing() {   # prints each identity whose grants are missing or incomplete
    python - "$VOLTTRON_HOME/authz.json" "$VEN_PROTECTED_RPCS" "$OPERATORS" "$VEN_WEB_CAPABILITIES" <<'PY'
import json, sys
try:
    agents = json.load(open(sys.argv[1])).get("agents", {})
except (OSError, ValueError):
    agents = {}
protected = sys.argv[2].split()
web = sys.argv[4].split()
want = {"ven.agent": (protected, web), "ven.bridge": ([], ["ven.agent.handle_command", "ven.agent.apply_shadow_config"])}
for operator in sys.argv[3].split():
    want[operator] = ([], [f"ven.agent.{m}" for m in protected])
for identity, (rpcs, caps) in want.items():
    held = agents.get(identity) or {}
    if not set(rpcs) <= set(held.get("protected_rpcs") or []) or not set(caps) <= set(held.get("rpc_capabilities") or []):
        print(identity)
PY
}
ensure_grants() {   # when: "before" the agents (re)start, or "after" an install (which may reset an identity)
    local missing_grants still
    missing_grants="$(authz_missing | tr '\n' ' ')"
    [ -n "${missing_grants// /}" ] || return 0
    quiet vctl authz add agent ven.agent --rpc-capabilities $VEN_WEB_CAPABILITIES --protected-rpcs $VEN_PROTECTED_RPCS
    # Who may change the building's state over VIP: the bridge (commands and shadow settings from
    # the cloud) and the operator tool (ven_rpc.py, ven_cmd_publish.py --local). Any other identity
    # may read (get_status, get_events, get_journal_since) but is refused these.
    quiet vctl authz add agent ven.bridge --rpc-capabilities ven.agent.handle_command ven.agent.apply_shadow_config
    for operator in $OPERATORS; do
        quiet vctl authz add agent "$operator" --rpc-capabilities $(for m in $VEN_PROTECTED_RPCS; do printf 'ven.agent.%s ' "$m"; done)
    done
    still="$(authz_missing | tr '\n' ' ')"
    [ -z "${still// /}" ] || die "granted the VEN's authorizations, but $VOLTTRON_HOME/authz.json still lacks them for: $still"
    changed "authz: granted ${missing_grants% } (ven.agent's web routes; its state-changing RPCs only for ven.bridge and $OPERATORS)"
    if [ "$1" = after ]; then   # granted to a running agent: restart it so it starts with its rights
        local identity uuid
        status_json="$(vctl --json status 2>/dev/null || echo '{}')"
        for identity in $missing_grants; do
            uuid="$(agent_field "$identity" agent_uuid)"
            [ -z "$uuid" ] || { quiet vctl restart "$uuid"; changed "restarted $identity (with its grants)"; }
        done
    fi
}
ensure_grants before
ensure_agent ven.agent "$HERE/VenAgent" "$(content_hash "$HERE/VenAgent/venagent" "$HERE/common/ven_common")"
ensure_agent ven.bridge "$HERE/BackendBridgeAgent" "$(content_hash "$HERE/BackendBridgeAgent/backendbridge" "$HERE/common/ven_common")"
ensure_grants after
if [ ${#CHANGED[@]} -eq 0 ]; then
    say "agents, libraries and configs: nothing changed"
fi
if [ -n "${VEN_CHANGES_FILE:-}" ]; then
    printf '%s\n' "${CHANGED[@]}" >> "$VEN_CHANGES_FILE"
fi
