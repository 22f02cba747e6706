#!/usr/bin/env bash
# Sourced by scripts/test.sh (which .ci/run calls): the board tests' real services. Installs
# PostgreSQL and Chromium (Debian packages) when missing, starts a throwaway PostgreSQL server on
# 127.0.0.1 and exports GAPMETER_TEST_PG_URL (tests/board create one database per test module in
# it). Source it, don't run it: the server is stopped when the shell that sourced it exits.
# A GAPMETER_TEST_PG_URL already set (your own server) is used as it is.
set -euo pipefail
_sudo=""; [ "$(id -u)" != 0 ] && _sudo="sudo"
if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  $_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq postgresql chromium chromium-driver
fi
if [ -n "${GAPMETER_TEST_PG_URL:-}" ]; then
  echo "PostgreSQL for the board tests: $GAPMETER_TEST_PG_URL (given)"
  return 0 2>/dev/null || exit 0
fi
_pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
# A free port unless one is given: two runs on one machine (a developer's and a CI clone's) must
# not collide.
_pgport="${GAPMETER_TEST_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
_pgdir=$(mktemp -d /tmp/gapmeter-pg.XXXXXX)
chmod 755 "$_pgdir"
_runas=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$_pgdir"   # postgres refuses to run as root
  _runas=(runuser -u postgres --)
fi
"${_runas[@]}" "$_pgbin/initdb" -D "$_pgdir/data" -U gapmeter --auth=trust >/dev/null
"${_runas[@]}" "$_pgbin/pg_ctl" -D "$_pgdir/data" -l "$_pgdir/log" -w \
  -o "-h 127.0.0.1 -p $_pgport -k $_pgdir -c fsync=off" start >/dev/null
"${_runas[@]}" "$_pgbin/createdb" -h 127.0.0.1 -p "$_pgport" -U gapmeter gapmeter_test
export GAPMETER_TEST_PG_URL="postgresql+psycopg://gapmeter@127.0.0.1:${_pgport}/gapmeter_test"
echo "PostgreSQL for the board tests: $GAPMETER_TEST_PG_URL (data in $_pgdir)"
_gapmeter_pg_stop() { "${_runas[@]}" "$_pgbin/pg_ctl" -D "$_pgdir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$_pgdir"; }
trap _gapmeter_pg_stop EXIT  # the server lives as long as the script that sourced this
