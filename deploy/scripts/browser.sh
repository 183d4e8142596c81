#!/usr/bin/env bash
# Installs Debian's Chromium, its chromedriver and a font for the console's browser tests
# (tests/e2e/test_console.py); no-op when they are there. Nothing is downloaded but Debian packages.
source "$(dirname "$0")/common.sh"

need_pkgs=()
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need_pkgs+=(fonts-dejavu-core)
[ ${#need_pkgs[@]} -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || die "missing packages ${need_pkgs[*]}; install them (apt-get install ${need_pkgs[*]}) or run as root"
log "installing ${need_pkgs[*]} from Debian"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
log "chromium and chromedriver ready"
