#!/usr/bin/env bash
# ansible-test sanity for virtfleet.libvirt, with no ignore files.
#   scripts/sanity.sh [extra ansible-test sanity args, e.g. --test pep8]
#
# ansible-test only runs from a real (not symlinked) .../ansible_collections/<ns>/<name> path,
# so the files git would ship are copied afresh to .build/sanity/ansible_collections/virtfleet/libvirt
# (scripts/_fresh-copy.sh).
#
# ansible-test bootstraps pip in each sanity venv with a get-pip script downloaded from a host
# that may be unreachable; a stand-in (ensurepip, then pip install of the pinned pip from the
# package index) is put in its cache first. The sanity venvs themselves are cached in
# ~/.ansible/test, so only the first run installs them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
DEST=$ROOT/.build/sanity/ansible_collections/virtfleet/libvirt
log() { echo "[sanity] $*" >&2; }

[[ -x $VENV/bin/ansible-test ]] || { log "no $VENV/bin/ansible-test: run 'make venv' first"; exit 1; }

# 1. get-pip stand-in, named after the pip version this ansible-test pins for sanity venvs.
pip_version=$("$PY" - <<'EOF'
import re, sys, types
try:
    from ansible_test._internal.python_requirements import get_venv_packages
    print(get_venv_packages(types.SimpleNamespace(version='%d.%d' % sys.version_info[:2]))['pip'])
except Exception:  # internal API moved: fall back to reading the pin from the source
    import pathlib, ansible_test
    src = pathlib.Path(ansible_test.__file__).with_name('_internal') / 'python_requirements.py'
    print(re.search(r"\bpip='([0-9.]+)'", src.read_text()).group(1))
EOF
)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
stub=$(cat <<EOF
# Stand-in for get-pip.py ${pip_version}, written by virtfleet scripts/sanity.sh.
# ansible-test runs it (via runpy) in a fresh venv created without pip, with get-pip's
# arguments: pip options, requirement specifiers such as pip==${pip_version}, --no-setuptools
# and --no-wheel. Like get-pip, run pip from a wheel (here the one bundled with ensurepip) to
# install what was asked from the package index; without a bundled wheel, use ensurepip.
import glob
import os
import runpy
import subprocess
import sys

import ensurepip

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')
args = ['install'] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
wheels = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl'))
if wheels:
    sys.path.insert(0, sorted(wheels)[-1])
    sys.argv = ['pip'] + args
    runpy.run_module('pip', run_name='__main__', alter_sys=True)
else:
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
    subprocess.check_call([sys.executable, '-m', 'pip'] + args)
EOF
)
# Never replace a real get-pip someone put there; refresh our own when this script changes it.
if [[ ! -s $get_pip ]] || { grep -q 'written by virtfleet scripts/sanity.sh' "$get_pip" &&
                            [[ $(<"$get_pip") != "$stub" ]]; }; then
  mkdir -p "$(dirname "$get_pip")"
  printf '%s\n' "$stub" > "$get_pip.tmp.$$"
  mv "$get_pip.tmp.$$" "$get_pip"
  log "wrote get-pip stand-in $get_pip"
fi

# 2. Fresh copy of what git would ship (scripts/_fresh-copy.sh).
# shellcheck source=scripts/_fresh-copy.sh
. "$ROOT/scripts/_fresh-copy.sh"
fresh_copy "$DEST"
if compgen -G "$DEST/tests/sanity/ignore-*.txt" >/dev/null; then
  log "tests/sanity/ignore-*.txt found: this project keeps no sanity ignore files; fix the code"
  exit 1
fi

# 3. Run it. --python follows the venv's interpreter (3.11 on Debian 12).
py_version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$DEST"
log "ansible-test sanity --python $py_version --local in $DEST"
env -u ANSIBLE_COLLECTIONS_PATH PATH="$VENV/bin:$PATH" \
  ansible-test sanity --python "$py_version" --local "$@"
