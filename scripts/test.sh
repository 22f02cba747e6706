#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this; the README's test command):
#   1. .venv with the locked dependencies (constraints.txt; created if missing),
#   2. the board tests' services: PostgreSQL on 127.0.0.1 and Chromium (.ci/board_services.sh,
#      which installs the Debian packages when missing: needs root or sudo),
#   3. ruff, the import layers (lint-imports), mypy, then every test. A test that needs a service
#      fails instead of skipping (GAPMETER_REQUIRE_SERVICES=1, tests/support/services.py).
#
#   scripts/test.sh                      # everything (20-25 min on a quiet 2-core machine)
#   scripts/test.sh tests/test_demo.py   # arguments go to pytest
#   GAPMETER_SKIP_SERVICES=1 scripts/test.sh   # no PostgreSQL/Chromium here: their tests skip
#                                              # (not the whole suite; refused in CI)
set -euo pipefail
cd "$(dirname "$0")/.."

# This machine's pip configuration names package folders that do not exist, and pip warns about
# each one even with -q; drop those lines so that real warnings stand out.
_pip() { .venv/bin/pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

[ -x .venv/bin/python ] || python3 -m venv .venv
# -c constraints.txt: the versions the suite passed with (CONTRIBUTING.md); torch==2.13.0 is the
# CPU build (a bare `torch` could resolve to a multi-GB CUDA build).
_pip install -q -c constraints.txt torch==2.13.0 -e '.[test]'
_pip check

if [ "${GAPMETER_SKIP_SERVICES:-0}" = 1 ]; then
  if [ "${CI:-}" = true ]; then
    echo "scripts/test.sh: GAPMETER_SKIP_SERVICES=1 is refused in CI (the whole suite must run)" >&2
    exit 2
  fi
  echo "scripts/test.sh: GAPMETER_SKIP_SERVICES=1: the PostgreSQL and Chromium tests will skip" >&2
  export GAPMETER_REQUIRE_SERVICES=0
else
  # Sourced, not run: the PostgreSQL server it starts lives until this script exits (its EXIT trap).
  # shellcheck source=../.ci/board_services.sh
  source .ci/board_services.sh
  export GAPMETER_REQUIRE_SERVICES="${GAPMETER_REQUIRE_SERVICES:-1}"
fi

.venv/bin/ruff check src tests bench
# The layer contract in pyproject.toml ([tool.importlinter]; docs/architecture.md): every import
# points down, no cycles.
.venv/bin/lint-imports
# Types of the core layers ([tool.mypy] in pyproject.toml).
.venv/bin/mypy

# -rs: every skip is listed with its reason; --durations: where the time goes (CI's budget).
set +e
.venv/bin/pytest -q -rs --durations=15 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  # pytest's "no tests were collected": a wrong path or -k; never a pass.
  echo "scripts/test.sh: pytest collected no tests (exit 5)" >&2
fi
exit "$rc"
