#!/bin/bash
# Lint (ruff), type check (mypy) and module size of the repository, with the settings in the root pyproject.toml.
# Exit status: 0 clean, 1 a finding (every check always runs, so one finding does not hide another's).
# Python: $VEN_PY, else the project venv's. run_tests.sh calls it as the service user before pytest.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${VEN_PY:-}" ]; then
    source "$repo/scripts/lib.sh"
    trap - ERR   # a finding is reported by the tools themselves
    VEN_PY="$VENV/bin/python"
fi
[ -x "$VEN_PY" ] || { printf 'error: no python at %s (run ./scripts/ven_control.sh start or set VEN_PY)\n' "$VEN_PY" >&2; exit 1; }
cd "$repo"

# What mypy checks: the core strictly (pyproject.toml), the shells, common, the stand-ins and the scripts.
mypy_targets=(VenAgent/venagent BackendBridgeAgent/backendbridge common/ven_common local_backend/local_backend
              building_device/building_device simbuilding/src/volttron/driver/interfaces/simbuilding scripts)
cache="${TMPDIR:-/tmp}/ven-check-cache"
rc=0
printf '==> ruff check\n'
"$VEN_PY" -m ruff check --no-cache . || rc=1
printf '==> mypy\n'
"$VEN_PY" -m mypy --cache-dir "$cache/mypy" "${mypy_targets[@]}" || rc=1
# Small modules, one concept each: a production module over 400 lines is a finding (tests and benchmarks
# read top to bottom and are exempt).
printf '==> module size (production modules <= 400 lines)\n'
too_big="$(find . -name '*.py' -not -path './tests/*' -not -path './bench/*' -not -path './.*' \
    -not -path '*/node_modules/*' -print0 | xargs -0 wc -l | awk '$2 != "total" && $1 > 400 {print "  " $2 ": " $1 " lines"}')"
if [ -n "$too_big" ]; then
    printf 'modules over 400 lines (split them by concept):\n%s\n' "$too_big"
    rc=1
else
    printf 'All production modules are 400 lines or less.\n'
fi
exit $rc
