#!/usr/bin/env bash
# The unit tests as ansible-test runs them: `ansible-test units --local` on a fresh copy of the
# collection in .build/units/ansible_collections/virtfleet/libvirt (scripts/_fresh-copy.sh), with
# the venv's Python and its pytest (2 workers, junit in tests/output of the copy).
#   scripts/units.sh [extra ansible-test units args, e.g. tests/unit/plugins/module_utils/test_engine.py]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
DEST=$ROOT/.build/units/ansible_collections/virtfleet/libvirt
log() { echo "[units] $*" >&2; }

[[ -x $VENV/bin/ansible-test ]] || { log "no $VENV/bin/ansible-test: run 'make venv' first"; exit 1; }
# shellcheck source=scripts/_fresh-copy.sh
. "$ROOT/scripts/_fresh-copy.sh"
fresh_copy "$DEST"
py_version=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$DEST"
log "ansible-test units --python $py_version --local in $DEST"
# The test driver domains of the e2e tests need nothing else; HOME stays, so ~/.ansible/tmp works.
env -u ANSIBLE_COLLECTIONS_PATH PATH="$VENV/bin:$PATH" \
  ansible-test units --python "$py_version" --local "$@"
