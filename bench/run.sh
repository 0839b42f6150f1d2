#!/bin/bash
# Run one system benchmark as the platform's service user from a copy of the sources.
#   bench/run.sh bench_command_latency.py [ARGS...]     (as root or as a normal user)
# Each benchmark starts its own broker + platform on free ports in a temp dir and tears them
# down; the system of `./scripts/ven_control.sh start` is left alone. Results are copied back
# to this checkout's bench/results/.
set -o errexit -o pipefail -o nounset
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { echo "usage: bench/run.sh <bench_script.py> [args...]" >&2; exit 2; }
script="$(basename "$1")"; shift
[ -f "$HERE/$script" ] || { echo "bench/run.sh: no such benchmark: bench/$script" >&2; exit 2; }
# Never point at the running system's VOLTTRON_HOME: the benchmarks make their own.
export VOLTTRON_HOME_OVERRIDE="/nonexistent/bench-uses-its-own-volttron-home"
if [ -z "${SSL_CERT_FILE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
# shellcheck source=../scripts/lib.sh
source "$HERE/../scripts/lib.sh"
ensure_dirs
sync_sources
ensure_venv
as_svc bash -c 'cd "$1" && shift && exec python -u "$@"' bench "$VEN_SRC" "bench/$script" "$@"
mkdir -p "$HERE/results"
for f in "$VEN_SRC"/bench/results/*.json; do
    [ -f "$f" ] && [ "$f" -nt "$HERE/results/$(basename "$f")" ] && cp "$f" "$HERE/results/" || true
done
