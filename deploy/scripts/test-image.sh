#!/usr/bin/env bash
# Builds the test image (default fastlane-test:latest) from Debian's static busybox and bash; no-op when present.
source "$(dirname "$0")/common.sh"
IMAGE="${1:-fastlane-test:latest}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$ROOT/deploy/images/test/Dockerfile" "$ctx/"
cp /bin/busybox "$ctx/busybox"
cp /bin/bash-static "$ctx/bash"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null
log "built $IMAGE"
