#!/usr/bin/env bash
# Refresh constraints.txt (the lock): resolve every dependency of `gapmeter[test]` afresh, in a
# throwaway venv, ignoring the current lock, and write what pip chose. Then run scripts/test.sh
# (which installs from the new lock) before committing it; see CONTRIBUTING.md.
#
#   scripts/refresh-lock.sh [VENV_DIR]     # default: a new directory under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-$(mktemp -d /tmp/gapmeter-lock.XXXXXX)/venv}"
python3 -m venv "$venv"
# torch==2.13.0: the CPU build (a local wheel here, or PyTorch's CPU index elsewhere); a bare
# `torch` would let pip pick the newest, multi-GB CUDA build.
"$venv/bin/pip" install -q torch==2.13.0 -e '.[test]'
"$venv/bin/pip" check
{
  echo "# The lock: every package \`pip install -e '.[test]'\` installed on $(date -u +%Y-%m-%d), with which"
  echo "# scripts/test.sh passed. Used as pip constraints (-c constraints.txt) by the README's commands,"
  echo "# scripts/test.sh and .ci/run. Written by scripts/refresh-lock.sh; do not edit by hand."
  echo "# Local version labels are dropped (torch==2.13.0, not 2.13.0+cpu): a pin without a label"
  echo "# matches the CPU build on disk or on PyTorch's CPU index, and pip prefers the labelled build."
  echo "# Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -sm)."
  "$venv/bin/pip" freeze --exclude-editable | sed -E 's/^([^=#]+==[^+]+)\+.*$/\1/'
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages) from $venv" >&2
