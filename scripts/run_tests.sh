#!/bin/bash
# The test command (README, .ci/run): works as root on a fresh Debian 12 machine or as a normal user.
# Installs what is missing (mosquitto, service user, venv), then runs the whole suite as the service
# user: unit tests (no platform) and integration tests (one real VOLTTRON platform and one real
# mosquitto per session, on free ports and their own VOLTTRON_HOME, so a running system is untouched).
#   extra pytest arguments: ./scripts/run_tests.sh -k shed      long fuzz run: VEN_LONG_FUZZ=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

t0=$SECONDS
step "Preparing the test environment"
ensure_packages
ensure_test_browser   # headless chromium for the web page test (tests only: it is big)
ensure_user
ensure_dirs
sync_sources
ensure_venv
# A run killed half-way leaves its platform and broker behind, holding the abstract socket
# the next run's platform needs (same basetemp path): end them first.
for pid in $(pgrep -u "$VEN_USER" 2>/dev/null || true); do
    if tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -q "^VOLTTRON_HOME=$VEN_ROOT/tmp/pytest/" \
        || tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q "$VEN_ROOT/tmp/pytest/"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
as_svc mkdir -p "$VEN_ROOT/tmp/pytest" "$VEN_SRC/tests/artifacts"
step "Running the test suite as '$VEN_USER' (setup took $((SECONDS - t0)) s)"
set +o errexit
trap - ERR   # a failing test run is reported by pytest itself
as_svc env VEN_PY="$VENV/bin/python" bash "$VEN_SRC/scripts/check_code.sh"   # ruff + mypy: a finding fails the run
check_rc=$?
VOLTTRON_HOME="$VEN_ROOT/tmp/no-platform-here" as_svc bash -c 'cd "$1" && shift && exec python -m pytest -p no:cacheprovider --durations=25 --basetemp="$VEN_ROOT/tmp/pytest" "$@"' _ \
    "$VEN_SRC" "$@"
rc=$?
if [ "$check_rc" -ne 0 ]; then
    printf 'error: scripts/check_code.sh reported findings (above)\n' >&2
    if [ "$rc" -eq 0 ]; then rc=1; fi
fi
set -o errexit
if [ -d "$VEN_SRC/tests/artifacts" ]; then
    mkdir -p "$VEN_REPO/tests/artifacts" && cp -r "$VEN_SRC/tests/artifacts/." "$VEN_REPO/tests/artifacts/" 2>/dev/null || true
fi
step "Tests finished in $((SECONDS - t0)) s (exit $rc)"
exit $rc
