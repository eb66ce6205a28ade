#!/usr/bin/env bash
# Molecule scenarios of the collection (extensions/molecule/: audit, remediate, detach) against the
# test fleet of scripts/fleet.sh (three SSH hypervisors on this machine).
#
#   scripts/molecule.sh [SCENARIO ...]     (default: audit remediate detach)
#
# - Makes sure the fleet is up (`scripts/fleet.sh up`, idempotent); each scenario's prepare step
#   reseeds it. Needs root (fleet.sh) and `make venv collection`.
# - Runs every scenario, even after one failed; exits 1 if any failed. Prints each one's time.
# - Molecule 26 runs a collection's scenarios only from the collection root (it looks for
#   galaxy.yml in the working directory), so this runs from the repo root.
# - The fleet is shared: the fleet suite (pytest tests/fleet) reseeds it, restarts daemons and
#   stops hosts. This waits for a running fleet suite to finish (up to MOLECULE_FLEET_WAIT seconds,
#   default 900) before it starts, and the two must not be started side by side.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

log() { printf '[molecule] %s\n' "$*" >&2; }

[[ -x .venv/bin/molecule ]] || { log ".venv/bin/molecule missing: run make venv"; exit 2; }
[[ -e .build/collections/ansible_collections/virtfleet/libvirt ]] || { log ".build/collections missing: run make collection"; exit 2; }
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.build/collections"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}" NO_COLOR="${NO_COLOR:-1}"

if (($#)); then scenarios=("$@"); else scenarios=(audit remediate detach); fi

fleet_suite_running() { pgrep -f 'pytest( .*)? tests/fleet' >/dev/null; }
wait_max=${MOLECULE_FLEET_WAIT:-900} waited=0
while fleet_suite_running; do
  ((waited == 0)) && log "the fleet suite (pytest tests/fleet) is running; waiting up to ${wait_max} s for it to finish"
  if ((waited >= wait_max)); then log "the fleet suite still runs after ${wait_max} s; giving up"; exit 1; fi
  sleep 5; waited=$((waited + 5))
done

t_all=$SECONDS
scripts/fleet.sh up || { log "scripts/fleet.sh up failed"; exit 1; }

failed=() summary=()
for s in "${scenarios[@]}"; do
  t0=$SECONDS
  # No destroy step in the sequence, so Molecule's state (prepared, converged) would outlive a
  # passing run and the next `molecule test` would skip prepare (no reseed): start clean.
  molecule reset -s "$s" >/dev/null 2>&1 || true
  if molecule test -s "$s"; then
    summary+=("$s passed in $((SECONDS - t0)) s")
  else
    failed+=("$s")
    summary+=("$s FAILED after $((SECONDS - t0)) s")
  fi
  molecule reset -s "$s" >/dev/null 2>&1 || true
done

for line in "${summary[@]}"; do log "$line"; done
log "total $((SECONDS - t_all)) s"
if ((${#failed[@]})); then log "FAILED: ${failed[*]}"; exit 1; fi
