#!/usr/bin/env bash
# ansible-lint (production profile, .ansible-lint) over the roles, the playbooks and the Molecule
# scenarios. Needs `make venv collection`. Extra arguments go to ansible-lint (e.g. -f pep8).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[[ -x .venv/bin/ansible-lint ]] || { echo "lint.sh: .venv/bin/ansible-lint missing: run make venv" >&2; exit 2; }
[[ -e .build/collections/ansible_collections/virtfleet/libvirt ]] ||
  { echo "lint.sh: .build/collections is missing: run make collection" >&2; exit 2; }
# The collection resolves from the repo (virtfleet.libvirt.* modules and roles), never from
# ~/.ansible/collections; PATH puts the venv's ansible first (ansible-lint warns otherwise).
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.build/collections"
export PATH="$ROOT/.venv/bin:$PATH"
exec ansible-lint "$@" roles/ playbooks/ extensions/molecule/
