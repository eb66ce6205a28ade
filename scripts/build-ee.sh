#!/usr/bin/env bash
# Build the execution environment of the AWX job templates (execution-environment.yml, docs/awx.md).
#
#   scripts/build-ee.sh [--create] [IMAGE]
#
# IMAGE defaults to quay.io/virtfleet/virtfleet-ee. The version is read from galaxy.yml, the only
# place it is written: the collection tarball (scripts/package.sh) goes into the build context as
# virtfleet-libvirt.tar.gz (the name execution-environment.yml expects), and the image is tagged
# IMAGE:<version> and IMAGE:latest. --create writes only the build context (.build/ee/context,
# with its Containerfile) and needs no container runtime.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
CREATE=0 IMAGE=quay.io/virtfleet/virtfleet-ee
for arg in "$@"; do
    case $arg in
        --create) CREATE=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        -*) echo "build-ee.sh: unknown option $arg" >&2; exit 2 ;;
        *) IMAGE=$arg ;;
    esac
done
[[ -x $PY ]] || { echo "build-ee.sh: $VENV missing; run make venv" >&2; exit 1; }
VERSION=$("$PY" -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
WORK=$ROOT/.build/ee
rm -rf "$WORK" && mkdir -p "$WORK"
scripts/package.sh >&2
cp execution-environment.yml "$WORK/"
cp ".build/dist/virtfleet-libvirt-$VERSION.tar.gz" "$WORK/virtfleet-libvirt.tar.gz"
cd "$WORK"
if (( CREATE )); then
    "$PY" -m ansible_builder create -f execution-environment.yml -c context --output-filename Containerfile
    echo "build context: $WORK/context (collection $VERSION)"
else
    "$PY" -m ansible_builder build -f execution-environment.yml -c context -t "$IMAGE:$VERSION" "$IMAGE:latest"
    echo "image: $IMAGE:$VERSION ($IMAGE:latest)"
fi
