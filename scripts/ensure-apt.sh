#!/usr/bin/env bash
# Install the named Debian packages that are not installed yet (--no-install-recommends).
# Runs apt-get update only when something is missing; a rerun with everything present is a
# few dpkg-query calls (~20 ms). Needs root when something is missing.
#   scripts/ensure-apt.sh PKG...
set -euo pipefail
log() { echo "[ensure-apt] $*" >&2; }

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [[ $(id -u) != 0 ]]; then
  log "missing Debian packages: ${missing[*]}"
  log "run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}"
  exit 1
fi
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Serialise with other apt users (parallel make, a second lab.sh) instead of failing on the lock.
apt-get -o DPkg::Lock::Timeout=120 update -qq
apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
