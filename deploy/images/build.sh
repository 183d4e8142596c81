#!/usr/bin/env bash
# Builds fastlane's container images without pulling anything from a registry: a Debian base made with
# debootstrap, then fastlane, Kafka and Cassandra FROM it. Each image is skipped when the engine has it already.
#   build.sh [--rebuild] [base|fastlane|kafka|cassandra|all]...   (default: all)
#   --rebuild   build the named images again even when they exist (the base from a fresh debootstrap, which
#               makes every image built on it afterwards new from its first layer)
# Settings: FASTLANE_IMAGE_TAG (default `latest`; the base is always fastlane-base:bookworm),
# FASTLANE_DEBIAN_MIRROR (default http://deb.debian.org/debian). Details: docs/images.md.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${FASTLANE_LOCAL_DIR:-$ROOT/.local}/images"
JARS="${FASTLANE_JARS_DIR:-$ROOT/.local/jars}"
MIRROR="${FASTLANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm   # Debian 12: its python3 is 3.11, the project's
TAG="${FASTLANE_IMAGE_TAG:-latest}"
BASE="fastlane-base:$SUITE"
ROOTFS_TAR="$CACHE/$SUITE-minbase.tar"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

rebuild=false
wanted=()
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=true ;;
    base | fastlane | kafka | cassandra) wanted+=("$arg") ;;
    all) wanted+=(base fastlane kafka cassandra) ;;
    *) die "usage: build.sh [--rebuild] [base|fastlane|kafka|cassandra|all]..." ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(base fastlane kafka cassandra)
dir=   # the root file system being made, removed however the script ends
trap '[ -z "$dir" ] || rm -rf "$dir"' EXIT
wants() { local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
mkdir -p "$CACHE"

# The root file system: Debian's minbase (apt, bash, coreutils; no systemd, no docs) plus apt settings that
# keep image layers small. Cached as a tarball: a second import needs no network.
make_rootfs() {
  command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get install -y -q debootstrap >/dev/null; }
  dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  log "debootstrap $SUITE (minbase) from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $CACHE/debootstrap.log"
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$dir/etc/apt/apt.conf.d/90fastlane" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  # Documentation, manual pages and translations are never read in a container.
  cat >"$dir/etc/dpkg/dpkg.cfg.d/90fastlane-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/* "$dir"/tmp/*
  # The engine's own files in every container.
  : >"$dir/etc/hostname"; : >"$dir/etc/resolv.conf"; : >"$dir/etc/hosts"
  tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.part" .
  mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
  rm -rf "$dir"; dir=
}

build_base() {
  if ! $rebuild && have_image "$BASE"; then log "$BASE present"; return 0; fi
  if $rebuild || [ ! -f "$ROOTFS_TAR" ]; then make_rootfs; fi
  log "importing $ROOTFS_TAR as $BASE"
  docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' "$ROOTFS_TAR" "$BASE" >/dev/null
}

# build IMAGE DOCKERFILE CONTEXT, with the legacy builder (the engine here is 20.10; nothing to pull). Its layer
# cache stays on: a new base (--rebuild base) changes every parent, so everything above it is built anew.
build() {
  local image=$1 dockerfile=$2 context=$3 before
  before=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  log "building $image"
  DOCKER_BUILDKIT=0 docker build -q --force-rm --build-arg "BASE=$BASE" -t "$image" -f "$dockerfile" "$context" \
    2> >(grep -vE 'DEPRECATED: The legacy builder|BuildKit is currently disabled|environment-variable\.$|^$' >&2) \
    >/dev/null
  # The version this build replaced, unless a container or another tag still uses it.
  if [ -n "$before" ] && [ "$before" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker image rm "$before" >/dev/null 2>&1 || true
  fi
}

# A build context holding only what the image copies: the legacy builder sends the whole context, and the
# checkout's .venv and .local are large. Hard links where possible, so staging costs next to nothing.
stage() {
  rm -rf "$1"; mkdir -p "$1"
  stage_more "$@"
}
stage_more() {
  local ctx=$1 path; shift
  for path in "$@"; do
    mkdir -p "$ctx/$(dirname "${path#*=}")"
    cp -al "${path%%=*}" "$ctx/${path#*=}" 2>/dev/null || cp -a "${path%%=*}" "$ctx/${path#*=}"
  done
}

# The runtime packages of uv.lock with their hashes, and their wheels, downloaded on this machine (cached by
# the requirements' digest): the image build installs them offline.
python_wheels() {
  local req=$1
  python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
  (cd "$ROOT" && python3 -m uv export --quiet --frozen --no-dev --no-emit-project --no-header \
    --format requirements-txt -o "$req")
  wheels="$CACHE/wheels/$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$wheels/.complete" ]; then
    log "downloading the locked wheels into $wheels"
    rm -rf "$wheels"; mkdir -p "$wheels"
    python3 -m pip download -q --only-binary=:all: --no-deps --require-hashes -r "$req" -d "$wheels"
    touch "$wheels/.complete"
  fi
  find "$CACHE/wheels" -mindepth 1 -maxdepth 1 ! -path "$wheels" -exec rm -rf {} +   # an older lock's
}

build_fastlane() {
  local image="fastlane:$TAG"
  if ! $rebuild && have_image "$image"; then log "$image present"; return 0; fi
  local ctx="$CACHE/context/fastlane" wheels
  stage "$ctx" "$ROOT/shared=shared" "$ROOT/services=services" "$ROOT/deploy/Dockerfile=deploy/Dockerfile" \
    "$HERE/probe.py=deploy/images/probe.py"
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  python_wheels "$ctx/deploy/requirements.txt"
  stage_more "$ctx" "$wheels=wheels"
  build "$image" "$ctx/deploy/Dockerfile" "$ctx"
  # The venv stage stays as build cache, the newest only: older ones were for an older lock.
  docker image ls -q --filter dangling=true --filter label=fastlane.build-stage=venv | tail -n +2 \
    | xargs -r docker image rm >/dev/null 2>&1 || true
}

jvm_jars() {
  [ -f "$JARS/$1/.complete" ] || "$ROOT/deploy/scripts/$1.sh" jars
}

build_kafka() {
  local image="fastlane-kafka:$TAG"
  if ! $rebuild && have_image "$image"; then log "$image present"; return 0; fi
  jvm_jars kafka
  local ctx="$CACHE/context/kafka"
  stage "$ctx" "$JARS/kafka=jars" "$ROOT/deploy/kafka=config" "$HERE/kafka/entrypoint.sh=entrypoint.sh" \
    "$HERE/kafka/Dockerfile=Dockerfile"
  build "$image" "$ctx/Dockerfile" "$ctx"
}

build_cassandra() {
  local image="fastlane-cassandra:$TAG"
  if ! $rebuild && have_image "$image"; then log "$image present"; return 0; fi
  jvm_jars cassandra
  local ctx="$CACHE/context/cassandra"
  stage "$ctx" "$JARS/cassandra=jars" "$ROOT/deploy/cassandra=config" \
    "$HERE/cassandra/entrypoint.sh=entrypoint.sh" "$HERE/cassandra/Dockerfile=Dockerfile"
  build "$image" "$ctx/Dockerfile" "$ctx"
}

# The base first: every other image is FROM it.
if wants base || ! have_image "$BASE"; then build_base; fi
wants fastlane && build_fastlane
wants kafka && build_kafka
wants cassandra && build_cassandra
for image in "$BASE" "fastlane:$TAG" "fastlane-kafka:$TAG" "fastlane-cassandra:$TAG"; do
  have_image "$image" && log "$image: $(docker image ls --format '{{.Size}}' "$image")"
done
exit 0
