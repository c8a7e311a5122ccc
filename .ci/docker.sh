#!/usr/bin/env bash
# Install and start a Docker engine on a machine of this kind (Debian, root, no systemd), then wait
# until it answers. Idempotent: installs only what is missing, starts no second engine.
#   bash .ci/docker.sh          install docker.io, debootstrap, docker-registry if missing; start dockerd
#   bash .ci/docker.sh stop     stop the dockerd this script started
# dockerd logs to ${DOCKERD_LOG:-/var/log/tagifai-dockerd.log}; its pid is in /run/tagifai-dockerd.pid.
set -euo pipefail
PIDFILE=/run/tagifai-dockerd.pid
LOG="${DOCKERD_LOG:-/var/log/tagifai-dockerd.log}"

if [[ "${1:-}" == "stop" ]]; then
    if [[ -f $PIDFILE ]]; then
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        rm -f "$PIDFILE"
        echo "docker: stopped dockerd $pid"
    fi
    exit 0
fi

start=$(date +%s)
missing=()
for tool in dockerd:docker.io debootstrap:debootstrap docker-registry:docker-registry; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if (( ${#missing[@]} )); then
    if [[ $(id -u) -ne 0 ]]; then echo "docker: installing ${missing[*]} needs root" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # docker.io brings dockerd, containerd, runc and the CLI; debootstrap builds the air-gapped base;
    # docker-registry (the distribution registry) lets the tests push to a registry on loopback.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "docker: installed ${missing[*]} in $(( $(date +%s) - start )) s"
fi
if docker info >/dev/null 2>&1; then
    echo "docker: an engine already answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "docker: no engine answers and starting one needs root" >&2
    exit 1
fi
mkdir -p "$(dirname "$LOG")"
# overlay2 on this machine's disk; no systemd here, so dockerd runs in the background of this shell.
nohup dockerd --storage-driver overlay2 >"$LOG" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker: engine $(docker version --format '{{.Server.Version}}') up in $(( $(date +%s) - start )) s (log: $LOG)"
        exit 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "docker: dockerd exited; last lines of $LOG:" >&2
        tail -20 "$LOG" >&2
        exit 1
    fi
    sleep 1
done
echo "docker: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -20 "$LOG" >&2
exit 1
