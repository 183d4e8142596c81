#!/usr/bin/env bash
# Local image registries (Debian's docker-registry) for pull tests; each is left alone when it answers already.
#   registry.sh        open registry on 127.0.0.1:5000
#   registry.sh auth   registry on 127.0.0.1:5001 that wants a user name and password (htpasswd, bcrypt); the
#                      credentials are made once and kept in $RUNDIR/registry-auth/credentials.json
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
    AUTH="$RUNDIR/registry-auth"
    if [ ! -f "$AUTH/htpasswd" ]; then
      mkdir -p "$AUTH"
      password=$(openssl rand -hex 16)
      # The registry reads bcrypt hashes only; the project's Python (3.11) makes them with its crypt module.
      hash=$("$ROOT/.venv/bin/python" -W ignore -c \
        'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$password")
      printf 'fastlane:%s\n' "$hash" >"$AUTH/htpasswd"
      printf '{"username": "fastlane", "password": "%s"}\n' "$password" >"$AUTH/credentials.json"
    fi
    serve registry-auth 5001 "auth:
  htpasswd:
    realm: fastlane-test
    path: $AUTH/htpasswd" ;;
  *) die "usage: registry.sh [open|auth]" ;;
esac
