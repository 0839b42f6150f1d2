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
DEVICE_TOPIC="${VEN_DEVICE_TOPIC:-campus/building/sim}"

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
lib_registered() { grep -q -i "$1" "$VOLTTRON_HOME/pyproject.toml" 2>/dev/null; }

# Libraries: the driver needs volttron-lib-tree (missing dependency of platform-driver rc9), and
# the simulated building is a driver interface installed like any other.
if ! lib_registered volttron-lib-tree; then
    say "install-lib volttron-lib-tree==2.0.0rc4"
    quiet vctl install-lib volttron-lib-tree==2.0.0rc4
fi
if ! lib_registered volttron-lib-web; then
    say "install-lib volttron-lib-web==2.0.0rc7 (the platform's web service, for the VEN's page)"
    quiet vctl install-lib volttron-lib-web==2.0.0rc7
fi
# The page's chart library, pinned, from the npm registry (never committed); one copy per VEN_ROOT.
WEB_VENDOR="${VEN_WEB_VENDOR:-${VEN_ROOT:-$VOLTTRON_HOME}/web-vendor}"
UPLOT_VERSION=1.6.32
if [ "$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$WEB_VENDOR/node_modules/uplot/package.json" 2>/dev/null)" != "$UPLOT_VERSION" ]; then
    say "npm install uplot@$UPLOT_VERSION into $WEB_VENDOR (chart library of the web page)"
    command -v npm >/dev/null 2>&1 || die "npm is missing: apt-get install npm (ven_control.sh start does), then run again"
    mkdir -p "$WEB_VENDOR"
    npm install --prefix "$WEB_VENDOR" --no-audit --no-fund --no-save --no-update-notifier --loglevel=error "uplot@$UPLOT_VERSION" >/dev/null \
        || die "npm install uplot@$UPLOT_VERSION failed: check access to the npm registry"
fi
if ! lib_registered volttron-lib-simbuilding-driver; then
    say "install-lib simbuilding (simulated building driver interface)"
    quiet vctl install-lib "$HERE/simbuilding"
fi

# Configs. `vctl config store` replaces, so re-running updates them.
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
python "$HERE/scripts/render_configs.py" --out "$rendered" --thing "$THING" --certs "$CERTS" --device "$DEVICE_TOPIC"
say "config store: platform.driver registry + device devices/$DEVICE_TOPIC"
quiet vctl config store platform.driver simbuilding.csv "$HERE/config/driver/simbuilding.csv" --csv
quiet vctl config store platform.driver "devices/$DEVICE_TOPIC" "$rendered/sim.config"
say "config store: ven.agent, ven.bridge"
quiet vctl config store ven.agent config "$rendered/ven-agent.json"
quiet vctl config store ven.bridge config "$rendered/bridge.json"

agent_uuid() {
    printf '%s' "$status_json" | python -c '
import json, sys
data = json.load(sys.stdin)
rows = data.values() if isinstance(data, dict) else data
print(next((r.get("agent_uuid", "") for r in rows if r.get("identity") == sys.argv[1]), ""))' "$1"
}

install_or_restart() {
    local identity="$1" source="$2" uuid
    uuid="$(agent_uuid "$identity")"
    if [ -n "$uuid" ]; then
        # Agents are installed editable: a restart runs the new code.
        say "restart $identity (already installed)"
        quiet vctl restart "$uuid"
    else
        say "install $identity from $source"
        quiet vctl install "$source" --vip-identity "$identity" --enable --start --agent-start-time 2
    fi
}
install_or_restart platform.driver volttron-platform-driver==2.0.0rc9
# The VEN's web page registers routes with platform.web: protected RPCs (before the agent starts).
say "authz: ven.agent may register web routes"
vctl authz add agent ven.agent --rpc-capabilities platform.web.register_endpoint \
    platform.web.unregister_all_agent_routes platform.web.register_path_route platform.web.get_web_root >/dev/null 2>&1 \
    || say "warning: vctl authz add agent ven.agent failed: the web page will not be served"
install_or_restart ven.agent "$HERE/VenAgent"
install_or_restart ven.bridge "$HERE/BackendBridgeAgent"
say "done"
