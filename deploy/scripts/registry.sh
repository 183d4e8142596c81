#!/usr/bin/env bash
# A local image registry (Debian's docker-registry) on 127.0.0.1:5000 for pull tests; no-op when it answers.
source "$(dirname "$0")/common.sh"
port_open 5000 && exit 0
command -v docker-registry >/dev/null || die "docker-registry is not installed (deploy/scripts/docker.sh installs it)"
mkdir -p "$DATA/registry"
cat >"$RUNDIR/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA/registry
http:
  addr: 127.0.0.1:5000
YAML
setsid nohup docker-registry serve "$RUNDIR/registry.yml" >"$LOGS/registry.log" 2>&1 </dev/null &
wait_for "registry on 127.0.0.1:5000" 30 port_open 5000
