#!/usr/bin/env bash
# Build the collection tarball from a clean copy and check what ships (docs/packaging.md).
#
#   scripts/package.sh              build .build/dist/virtfleet-libvirt-<version>.tar.gz, then lint it
#   scripts/package.sh --importer   also run galaxy-importer on it (its own venv; ansible-test off)
#
# The copy holds the files git knows (tracked, plus untracked files that .gitignore does not
# ignore), so caches, reports and build output of a dirty tree never reach the build; galaxy.yml's
# build_ignore then drops the developer tooling. The checks run on the tarball's own content,
# extracted to $WORK/check/ansible_collections/virtfleet/libvirt. $WORK is a temporary directory
# outside the repository (antsibull-docs copies a collection through git, and inside this work
# tree .gitignore hides .build/ from it: a copy there lints as empty and passes). Kept on failure.
#   - no member is build output or a cache, none is larger than MAX_MEMBER_KB (default 256);
#   - antsibull-changelog lint and lint-changelog-yaml;
#   - antsibull-docs lint-collection-docs --plugin-docs.
# The version is read from galaxy.yml, the only place that holds it.
#
# Tools: .venv (make venv) for ansible-galaxy and antsibull-changelog. antsibull-docs and
# galaxy-importer come from $ANTSIBULL_DOCS / $GALAXY_IMPORTER_PYTHON when set, else from .venv when
# installed there, else from venvs this script creates once under .build/tools (pinned, from PyPI).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

IMPORTER=0
for arg in "$@"; do
    case $arg in
        --importer) IMPORTER=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "package.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
[[ -x $PY ]] || { echo "package.sh: $VENV missing; run make venv" >&2; exit 1; }
ANTSIBULL_DOCS_VERSION=2.28.0
GALAXY_IMPORTER_VERSION=0.4.44
ANSIBLE_CORE_VERSION=$("$PY" -c 'import ansible.release as r; print(r.__version__)')
MAX_MEMBER_KB=${MAX_MEMBER_KB:-256}

VERSION=$("$PY" -c 'import yaml, sys; print(yaml.safe_load(open("galaxy.yml"))["version"])')
NAME=virtfleet-libvirt-$VERSION.tar.gz
DIST=$ROOT/.build/dist
WORK=$(mktemp -d "${TMPDIR:-/tmp}/virtfleet-package.XXXXXX")
trap 'echo "package.sh: failed; the copy is kept in $WORK" >&2' ERR
TOOLS=$ROOT/.build/tools
STAGE=$WORK/src/ansible_collections/virtfleet/libvirt
CHECK=$WORK/check/ansible_collections/virtfleet/libvirt

tool_venv() {  # tool_venv DIR PACKAGE... : a venv with exactly these pins, created once
    local dir=$1; shift
    local want="$*"
    if [[ ! -x $dir/bin/python || $(cat "$dir/.pins" 2>/dev/null) != "$want" ]]; then
        echo "package.sh: installing $want into $dir" >&2
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2)
        echo "$want" > "$dir/.pins"
    fi
}

# 1. A clean copy of the tree.
mkdir -p "$STAGE" "$DIST"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done \
    | tar -c --null -T - -f - | tar -x -C "$STAGE"

# 2. Build.
rm -f "$DIST/$NAME"
(cd "$STAGE" && "$VENV/bin/ansible-galaxy" collection build --force --output-path "$DIST" . >/dev/null)
size=$(stat -c %s "$DIST/$NAME")
members=$(tar -tzf "$DIST/$NAME" | grep -vc '/$')
echo "tarball: $DIST/$NAME ($((size / 1024)) KiB, $members files)"

# 3. What ships: no build output, caches or large files.
mkdir -p "$CHECK"
tar -xzf "$DIST/$NAME" -C "$CHECK"
bad=$(tar -tzf "$DIST/$NAME" | grep -E '(^|/)(\.venv|\.build|__pycache__|\.pytest_cache|\.hypothesis|\.mypy_cache|\.ruff_cache|htmlcov|reports|backups|\.git)(/|$)|\.pyc$|(^|/)\.coverage|^tests/output/|^changelogs/\.plugin-cache\.yaml$|\.tar\.gz$|\.(qcow2|img|raw|iso)$' || true)
large=$(tar -tvzf "$DIST/$NAME" | awk -v max=$((MAX_MEMBER_KB * 1024)) '$3 > max {print $6 " (" int($3 / 1024) " KiB)"}')
if [[ -n $bad || -n $large ]]; then
    [[ -z $bad ]] || printf 'package.sh: build output in the tarball:\n%s\n' "$bad" >&2
    [[ -z $large ]] || printf 'package.sh: files over %s KiB in the tarball:\n%s\n' "$MAX_MEMBER_KB" "$large" >&2
    exit 1
fi
echo "content: no build output, largest file $(tar -tvzf "$DIST/$NAME" | sort -k3 -n | tail -1 | awk '{print $6 " (" int($3 / 1024) " KiB)"}')"

# 4. Changelog (on the tarball's copy).
(cd "$CHECK" && "$VENV/bin/antsibull-changelog" lint && "$VENV/bin/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml)
echo "antsibull-changelog lint: ok"
if "$PY" - "$VERSION" <<'EOF'
import sys, yaml
releases = yaml.safe_load(open("changelogs/changelog.yaml")).get("releases") or {}
sys.exit(0 if sys.argv[1] in releases else 1)
EOF
then
    echo "note: $VERSION is already released in changelogs/changelog.yaml; bump version: in galaxy.yml" \
         "before the next 'antsibull-changelog release' (which would otherwise add to $VERSION)"
fi

# 5. Docs lint (on the tarball's copy).
docs=${ANTSIBULL_DOCS:-}
if [[ -z $docs ]]; then
    if [[ -x $VENV/bin/antsibull-docs ]]; then
        docs=$VENV/bin/antsibull-docs
    else
        tool_venv "$TOOLS/antsibull-docs" "antsibull-docs==$ANTSIBULL_DOCS_VERSION" "ansible-core==$ANSIBLE_CORE_VERSION"
        docs=$TOOLS/antsibull-docs/bin/antsibull-docs
    fi
fi
(cd "$CHECK" && PATH="$(dirname "$docs"):$PATH" "$docs" lint-collection-docs --plugin-docs .)
echo "antsibull-docs lint-collection-docs --plugin-docs: ok"

# 6. galaxy-importer (opt-in: ~40 s, its own venv). Its ansible-test step needs docker or podman.
if (( IMPORTER )); then
    gi=${GALAXY_IMPORTER_PYTHON:-}
    if [[ -z $gi ]]; then
        tool_venv "$TOOLS/galaxy-importer" "galaxy-importer==$GALAXY_IMPORTER_VERSION"
        gi=$TOOLS/galaxy-importer/bin/python
    fi
    cfg=$WORK/galaxy-importer.cfg
    # Its ansible-test step runs in a container: on only where podman or a docker daemon answers.
    test_step=False docker=False
    if podman info >/dev/null 2>&1; then test_step=True; fi
    if docker info >/dev/null 2>&1; then test_step=True docker=True; fi
    cat > "$cfg" <<EOF
[galaxy-importer]
run_ansible_test = $test_step
ansible_test_local_image = $test_step
local_image_docker = $docker
run_ansible_lint = True
offline_ansible_lint = True
check_changelog = True
EOF
    echo "galaxy-importer $GALAXY_IMPORTER_VERSION (run_ansible_test = $test_step)"
    (cd "$WORK" && GALAXY_IMPORTER_CONFIG=$cfg PATH="$(dirname "$gi"):$PATH" \
        "$gi" -m galaxy_importer.main "$DIST/$NAME") > "$WORK/galaxy-importer.log" 2>&1 \
        || { grep -v '^Loading ' "$WORK/galaxy-importer.log" >&2; echo "package.sh: kept $WORK" >&2; exit 1; }
    grep -v '^Loading ' "$WORK/galaxy-importer.log"
fi
rm -rf "$WORK"
