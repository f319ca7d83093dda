#!/usr/bin/env bash
# Makes sure the services chatr's tests and local runs need are up on this
# machine: PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") and Redis
# on 127.0.0.1:6379. Starts them if they are down, installs them from Debian's
# packages if they are missing, so a fresh machine works too. Idempotent.
set -euo pipefail

log() { echo "services: $*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [[ -z $apt_updated ]]; then as_root apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >&2
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

# --- PostgreSQL ---
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing PostgreSQL from Debian packages"
  apt_install postgresql postgresql-client
fi
if ! pg_up; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  if [[ -z $ver ]]; then log "no PostgreSQL cluster found"; exit 1; fi
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # A fresh cluster asks for passwords on TCP; tests connect as postgres with trust.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { log "PostgreSQL did not start"; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  log "creating database test"
  psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
fi

# --- Redis ---
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Redis from Debian packages"
  apt_install redis-server
fi
if ! redis_up; then
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 40); do redis_up && break; sleep 0.25; done
  redis_up || { log "Redis did not start"; exit 1; }
fi
log "PostgreSQL and Redis are up"
