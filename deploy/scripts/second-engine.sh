#!/usr/bin/env bash
# A second Docker engine on this machine (own socket, data-root, exec-root and bridge), standing in for a
# second Docker host in the farm tests. Loads the test image into it. (Not `--bridge none`: that makes dockerd
# delete the docker0 bridge the first engine uses.)
#   second-engine.sh start|stop   (prints nothing on success; the socket is $RUNDIR/docker2.sock)
source "$(dirname "$0")/common.sh"
SOCK="$RUNDIR/docker2.sock"
PIDFILE="$RUNDIR/docker2.pid"
EXECROOT="$RUNDIR/docker2-exec"  # per checkout: two clones' engines must not share containerd's state
D2=(docker -H "unix://$SOCK")
up() { "${D2[@]}" info >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if ! up; then
      [ "$(id -u)" = 0 ] || die "a second dockerd needs root"
      mkdir -p "$DATA/docker2" "$EXECROOT"
      rm -f "$SOCK" "$PIDFILE"
      if ! ip link show fl2br0 >/dev/null 2>&1; then
        ip link add fl2br0 type bridge
        ip addr add 172.30.99.1/24 dev fl2br0
        ip link set fl2br0 up
      fi
      setsid nohup dockerd -H "unix://$SOCK" --data-root "$DATA/docker2" --exec-root "$EXECROOT" \
        --pidfile "$PIDFILE" --bridge fl2br0 --iptables=false --ip6tables=false \
        >"$LOGS/dockerd2.log" 2>&1 </dev/null &
      wait_for "second dockerd" 60 up
    fi
    image="${2:-fastlane-test:latest}"
    if ! "${D2[@]}" image inspect "$image" >/dev/null 2>&1; then
      docker save "$image" | "${D2[@]}" load -q >/dev/null
    fi
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
      for _ in $(seq 30); do up || break; sleep 1; done
    fi
    ;;
  *) die "usage: $0 start|stop" ;;
esac
