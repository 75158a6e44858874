#!/usr/bin/env bash
# Make a local PostgreSQL server available for the test suite: install it if absent (Debian), start the cluster
# if it is down, and create the password role the tests connect as. Idempotent; needs root (CI and dev machines).
set -euo pipefail

role=${VIBEXP_TEST_PG_ROLE:-vibexp}
password=${VIBEXP_TEST_PG_PASSWORD:-vibexp}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_createcluster "$version" main >/dev/null
  cluster="$version main"
fi
# shellcheck disable=SC2086
if ! pg_lsclusters --no-header | awk '{print $4}' | grep -q online; then
  pg_ctlcluster $cluster start
fi

for _ in $(seq 1 30); do
  su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.5
done

exists=$(su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='$role'\"")
if [ "$exists" != "1" ]; then
  su postgres -c "psql -qc \"CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'\""
fi
echo "PostgreSQL ready: role $role on 127.0.0.1:5432" >&2
