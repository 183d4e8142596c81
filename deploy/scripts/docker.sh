#!/usr/bin/env bash
# Makes sure a Docker engine answers: uses the running one; as root installs Debian's docker.io and starts
# dockerd when none runs; otherwise fails with a clear message. Also installs the static binaries our test
# image is built from.
source "$(dirname "$0")/common.sh"

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
dpkg -s bash-static >/dev/null 2>&1 || need_pkgs+=(bash-static)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)

if docker info >/dev/null 2>&1 && [ ${#need_pkgs[@]} -eq 0 ]; then exit 0; fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages ${need_pkgs[*]}; install them (apt-get install ${need_pkgs[*]}) or run as root"
  log "installing ${need_pkgs[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "no Docker engine answers and we are not root: start dockerd or set DOCKER_HOST"
  log "starting dockerd (log: $LOGS/dockerd.log)"
  setsid nohup dockerd >"$LOGS/dockerd.log" 2>&1 < /dev/null &
  engine_up() { docker info >/dev/null 2>&1; }
  wait_for "dockerd" 60 engine_up
fi
log "docker engine ready"
