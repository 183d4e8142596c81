#!/usr/bin/env bash
# Local image registries (Debian's docker-registry) for pull tests; each is left alone when it answers already.
#   registry.sh        open registry on 127.0.0.1:5000
#   registry.sh auth   registry on 127.0.0.1:5001 that wants a user name and password (htpasswd, bcrypt); the
#                      (fixed, local-only) credentials are in $RUNDIR/registry-auth/credentials.json
source "$(dirname "$0")/common.sh"
command -v docker-registry >/dev/null || die "docker-registry is not installed (deploy/scripts/docker.sh installs it)"

serve() {  # serve NAME PORT [EXTRA YAML]
  local name=$1 port=$2 extra=${3:-}
  port_open "$port" && return 0
  mkdir -p "$DATA/$name"
  cat >"$RUNDIR/$name.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA/$name
http:
  addr: 127.0.0.1:$port
$extra
YAML
  setsid nohup docker-registry serve "$RUNDIR/$name.yml" >"$LOGS/$name.log" 2>&1 </dev/null &
  wait_for "$name on 127.0.0.1:$port" 30 port_open "$port"
}

case "${1:-open}" in
  open) serve registry 5000 ;;
  auth)
    # Fixed throwaway credentials for a registry that only listens on 127.0.0.1: every checkout's tests can use
    # the one already running. The registry reads bcrypt hashes only; the project's Python (3.11) makes them.
    AUTH="$RUNDIR/registry-auth"
    mkdir -p "$AUTH"
    printf '{"username": "fastlane", "password": "fastlane-local-test"}\n' >"$AUTH/credentials.json"
    if [ ! -f "$AUTH/htpasswd" ]; then
      hash=$("$ROOT/.venv/bin/python" -W ignore -c \
        'import crypt; print(crypt.crypt("fastlane-local-test", crypt.mksalt(crypt.METHOD_BLOWFISH)))')
      printf 'fastlane:%s\n' "$hash" >"$AUTH/htpasswd"
    fi
    serve registry-auth 5001 "auth:
  htpasswd:
    realm: fastlane-test
    path: $AUTH/htpasswd" ;;
  *) die "usage: registry.sh [open|auth]" ;;
esac
