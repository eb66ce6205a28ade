#!/usr/bin/env bash
# Build the collection's docsite with antsibull-docs and Sphinx into .build/docsite (make docsite).
#
#   scripts/docsite.sh [DEST]        DEST defaults to .build/docsite; open DEST/index.html
#
# 1. copies the files git knows (as scripts/package.sh does) to a temporary
#    ansible_collections/virtfleet/libvirt, so the docsite shows what ships, not a dirty tree;
# 2. `antsibull-docs collection --use-current --squash-hierarchy` writes the RST of every module,
#    plugin, filter and role, the collection index and the extra docs (docs/docsite/extra-docs.yml,
#    docs/docsite/rst/*.rst, docs/docsite/links.yml);
# 3. the guides are written once, in Markdown, as docs/*.md (the repository and Galaxy show them
#    there): each docs/docsite/rst/<name>.rst whose first line is `.. virtfleet-md: ../../<file>.md` is a
#    stub (label, title, a link) that antsibull-docs lint-collection-docs checks; here it is replaced by
#    the Markdown file itself under the same name and label, which MyST renders (a stub whose title
#    is not its Markdown file's first heading gets a note);
# 4. `sphinx-build -W --keep-going -n`: any warning or error (a broken reference, a bad directive,
#    a page in no toctree) fails the build. No network: no intersphinx.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-$ROOT/.venv}
DEST=$(realpath -m "${1:-$ROOT/.build/docsite}")
for tool in antsibull-docs sphinx-build; do
    [[ -x $VENV/bin/$tool ]] || { echo "docsite.sh: $VENV/bin/$tool missing: run make venv (requirements-dev.txt)" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/virtfleet-docsite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
COLL=$WORK/collections/ansible_collections/virtfleet/libvirt
RST=$WORK/rst
start=$SECONDS

# 1. What git knows.
mkdir -p "$COLL" "$RST"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done \
    | tar -c --null -T - -f - | tar -x -C "$COLL"

# 2. antsibull-docs (it wants the destination writable by itself only).
chmod og-w "$RST"
ANSIBLE_COLLECTIONS_PATH=$WORK/collections PATH="$VENV/bin:$PATH" \
    "$VENV/bin/antsibull-docs" collection --use-current --squash-hierarchy --cleanup everything \
    --dest-dir "$RST" virtfleet.libvirt >/dev/null

# 3. Markdown guides in place of their stubs.
for stub in "$RST"/docsite/*.rst; do
    first=$(head -n1 "$stub")
    [[ $first == '.. virtfleet-md: '* ]] || continue
    md=$COLL/docs/docsite/rst/${first#.. virtfleet-md: }
    [[ -f $md ]] || { echo "docsite.sh: $(basename "$stub"): ${first#.. virtfleet-md: } does not exist" >&2; exit 1; }
    label=$(sed -n 's/^\.\. _\(ansible_collections\.[^:]*\):$/\1/p' "$stub" | head -n1)
    title=$(awk 'prev ~ /[^ ]/ && /^[=]+$/ {print prev; exit} {prev = $0}' "$stub")
    heading=$(sed -n 's/^# //p' "$md" | head -n1)
    # The page shows the Markdown's own heading; the stub's title is what the lint and Galaxy see.
    if [[ $title != "$heading" ]]; then
        echo "docsite.sh: note: update the title of docs/docsite/rst/$(basename "$stub") to '$heading'" >&2
    fi
    { printf '(%s)=\n\n' "$label"; cat "$md"; } > "${stub%.rst}.md"
    rm "$stub"
done
# What the guides link to: the report schema and the report screenshot.
mkdir -p "$RST/roles/report/files"
cp "$COLL/roles/report/files/report.schema.json" "$RST/roles/report/files/"
cp "$COLL/docs/report-screenshot.png" "$RST/docsite/" 2>/dev/null || true

# Labels of Ansible's own documentation that the generated pages refer to (docs.ansible.com has them;
# without intersphinx, which needs the network, each gets a page that links there).
ansible_ref() {  # ansible_ref LABEL TITLE URL
    # shellcheck disable=SC2016 # the backquotes are RST markup, not a command substitution
    printf ':orphan:\n\n.. _%s:\n\n%s\n%s\n\nSee `%s <%s>`__ in the Ansible documentation.\n' \
        "$1" "$2" "$(printf '%s' "$2" | tr -c '\n' '=')" "$2" "$3" > "$RST/_ansible_ref_$1.rst"
}
ansible_ref common_return_values "Common return values" \
    https://docs.ansible.com/projects/ansible/latest/reference_appendices/common_return_values.html
ansible_ref action_plugins "Action plugins" \
    https://docs.ansible.com/projects/ansible/latest/plugins/action.html
ansible_ref ansible_configuration_settings "Ansible configuration settings" \
    https://docs.ansible.com/projects/ansible/latest/reference_appendices/config.html

# 4. Sphinx.
cat > "$WORK/conf.py" <<'PY'
# Sphinx configuration of the virtfleet.libvirt docsite (written by scripts/docsite.sh).
project = "virtfleet.libvirt"
copyright = "virtfleet contributors"
title = "virtfleet.libvirt"
html_short_title = "virtfleet.libvirt"
extensions = ["sphinx_antsibull_ext", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
default_role = "any"
nitpicky = True
PY
rm -rf "$DEST"
"$VENV/bin/sphinx-build" -q -W --keep-going -n -b html -c "$WORK" -d "$WORK/doctrees" "$RST" "$DEST"
echo "docsite: $DEST/index.html ($(find "$DEST" -name '*.html' | wc -l) pages, $((SECONDS - start)) s)"
