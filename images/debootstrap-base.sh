#!/usr/bin/env bash
# An air-gapped base image: Python 3.11 from Debian packages (debootstrap), for hosts that reach a
# Debian mirror and PyPI but no container registry, so that python:3.11-slim cannot be pulled.
#
#   bash images/debootstrap-base.sh [NAME]         default NAME: tagifai-python:3.11-bookworm
#   make images BASE_IMAGE=tagifai-python:3.11-bookworm
#
# Needs root, debootstrap and a running Docker engine (.ci/docker.sh installs and starts both).
# Skips the build when NAME already exists (FORCE=1 rebuilds).
#
# Host-specific on purpose: when the host's CA bundle differs from Debian's (a TLS-intercepting
# egress proxy, a private CA), it is copied into THIS image only, and PIP_CERT/SSL_CERT_FILE point at
# it, so pip inside the step builds can reach the package index. The project's default images
# (BASE_IMAGE=python:3.11-slim) never contain it. HOST_CA_BUNDLE= (empty) leaves Debian's bundle.
set -euo pipefail
NAME="${1:-${BASE_IMAGE_NAME:-tagifai-python:3.11-bookworm}}"
SUITE="${DEBIAN_SUITE:-bookworm}"          # bookworm's python3 is 3.11, what every lock targets
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [[ -z "${FORCE:-}" ]] && docker image inspect "$NAME" >/dev/null 2>&1; then
    echo "debootstrap-base: $NAME exists (FORCE=1 rebuilds)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap-base: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
start=$(date +%s)
rootfs="$(mktemp -d /var/tmp/tagifai-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
# minbase: dpkg, apt and the Essential set; python3-venv brings ensurepip (pip and setuptools wheels).
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# What a container never needs: package lists and caches, docs, man pages, translations.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
changes=(--change "ENV PATH=$SYSTEM_PATH" --change "ENV LANG=C.UTF-8" --change 'CMD ["python3"]')
if [[ -n "$HOST_CA_BUNDLE" && -f "$HOST_CA_BUNDLE" ]] && ! cmp -s "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"; then
    cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    changes+=(--change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
              --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
    echo "debootstrap-base: the host's CA bundle is in $NAME (local base only)"
fi
tar --numeric-owner -C "$rootfs" -c . | docker import "${changes[@]}" \
    --message "debootstrap --variant=minbase $SUITE + python3, python3-venv, ca-certificates" - "$NAME" >/dev/null
echo "debootstrap-base: $NAME ($(docker image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%.0f MB", $1/1e6}')) in $(( $(date +%s) - start )) s"
