#!/usr/bin/env bash
# Make sure a Docker engine answers: the one at DOCKER_HOST, else the default socket.
# When none answers and we are root on Debian, install Debian's docker.io and start dockerd with no
# bridge and no iptables rules: sandbox containers run with network "none", and the image build uses
# the host network, so the engine never needs to touch the host's networking.
# Usage: sandbox/engine.sh [ensure|status|stop]
set -euo pipefail

CACHE=${AUDIOPROBE_CACHE_DIR:-$HOME/.cache/audioprobe}
LOG_DIR=$CACHE/logs
LOG=$LOG_DIR/dockerd.log
WAIT_S=${AUDIOPROBE_DOCKERD_WAIT_S:-60}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "engine: $*" >&2; exit 1; }

# The socket this engine is reached on: DOCKER_HOST when it names a unix socket, else the default.
socket_path() {
  case "${DOCKER_HOST:-}" in
    "") echo /var/run/docker.sock ;;
    unix://*) echo "${DOCKER_HOST#unix://}" ;;
    *) echo "" ;;
  esac
}

# One pid file per socket, so a second engine (a unix DOCKER_HOST) is told apart from the default one.
PIDFILE=$CACHE/dockerd-$(socket_path | sha256sum | cut -c1-8).pid

# Alive and not a zombie (a dockerd that died under a parent that never reaps it).
running() { [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

answers() {
  if command -v docker >/dev/null 2>&1; then
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    local sock; sock=$(socket_path)
    [ -n "$sock" ] && [ -S "$sock" ] && timeout 10 curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  fi
}

install_engine() {
  if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    die "no Docker engine answers and none is installed. Install Docker (on Debian: apt-get install docker.io), \
start it, or set DOCKER_HOST to a running engine; then rerun 'make setup'."
  fi
  say "installing Debian's docker.io (engine, containerd, runc, tini)"
  if [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || ! apt-cache show docker.io >/dev/null 2>&1; then
    apt-get update -q -o DPkg::Lock::Timeout=300
  fi
  # Keep the package's own init script from starting dockerd with its defaults (a bridge, iptables rules):
  # policy-rc.d exit 101 means "no service starts", for this install only.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; ours=1; fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends docker.io || rc=$?
  [ "$ours" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install docker.io failed"
}

start_engine() {
  local sock; sock=$(socket_path)
  [ -n "$sock" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer, and only a unix socket can be started here. \
Start that engine, or unset DOCKER_HOST to use a local one."
  [ "$(id -u)" = 0 ] || die "no Docker engine answers on $sock, and starting dockerd needs root. \
Start Docker (e.g. 'sudo systemctl start docker'), or set DOCKER_HOST to a running engine."
  if [ -f "$PIDFILE" ] && running "$(cat "$PIDFILE")"; then
    say "dockerd (pid $(cat "$PIDFILE")) is starting; waiting for $sock"
  else
    mkdir -p "$LOG_DIR" "$(dirname "$sock")"
    # A stale socket from a dead daemon would make dockerd refuse to start.
    [ -S "$sock" ] && rm -f "$sock"
    say "starting dockerd on $sock (no bridge, no iptables); log: $LOG"
    local extra=()
    # A second engine next to the system one needs its own state; the default socket keeps the defaults.
    if [ "$sock" != /var/run/docker.sock ]; then
      local base; base=$CACHE/dockerd-$(echo "$sock" | sha256sum | cut -c1-8)
      local ns; ns=audioprobe-$(echo "$sock" | sha256sum | cut -c1-8)
      extra=(--data-root "$base/data" --exec-root "$base/exec" --pidfile "$base/dockerd.pid"
             --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins")
    fi
    nohup setsid dockerd -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false \
      --ip-forward=false --ip-masq=false "${extra[@]}" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  local i
  for ((i = 0; i < WAIT_S * 2; i++)); do
    answers && { say "Docker engine answers on $sock"; return 0; }
    if ! running "$(cat "$PIDFILE")"; then
      tail -n 20 "$LOG" >&2 || true
      die "dockerd exited while starting; see $LOG"
    fi
    sleep 0.5
  done
  tail -n 20 "$LOG" >&2 || true
  die "dockerd did not answer on $sock within ${WAIT_S}s; see $LOG"
}

cmd=${1:-ensure}
case "$cmd" in
  ensure)
    if answers; then say "Docker engine answers (${DOCKER_HOST:-unix:///var/run/docker.sock})"; exit 0; fi
    install_engine
    answers && { say "Docker engine answers"; exit 0; }
    start_engine
    ;;
  status)
    if answers; then echo "engine: answers (${DOCKER_HOST:-unix:///var/run/docker.sock})"; else echo "engine: none answers"; exit 1; fi
    ;;
  stop)  # only the dockerd this script started
    if [ -f "$PIDFILE" ] && running "$(cat "$PIDFILE")"; then
      kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; say "stopped dockerd"
    else
      echo "engine: no dockerd started by this script is running"
    fi
    ;;
  *) die "unknown command $cmd (ensure|status|stop)" ;;
esac
