#!/usr/bin/env bash
# Run one pytest suite with the project venv, with the collection importable as
# ansible_collections.virtfleet.libvirt (via the .build/collections symlink, `make collection`).
#   scripts/run-pytest.sh DIR-or-FILE [pytest args...]
# pytest exits 5 when it collects nothing. That counts as success only while DIR holds no test
# file at all (a suite nobody has written yet); once test files exist, collecting none fails.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:?usage: run-pytest.sh DIR [pytest args]}; shift
cd "$ROOT" || exit 1
if [[ ! -e $dir ]]; then
  echo "[run-pytest] $dir does not exist: no tests to run" >&2
  exit 0
fi
export PYTHONPATH=$ROOT/.build/collections${PYTHONPATH:+:$PYTHONPATH}
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections
"$ROOT/.venv/bin/python" -m pytest "$dir" -q "$@"
rc=$?
if [[ $rc == 5 ]] && [[ -z $(find "$dir" -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit) ]]; then
  exit 0
fi
exit "$rc"
