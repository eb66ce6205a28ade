# shellcheck shell=bash
# Sourced by scripts/sanity.sh and scripts/units.sh (not run on its own).
#
# fresh_copy DEST: copy the files git would ship (tracked + untracked-not-ignored) afresh to DEST
# (a .../ansible_collections/virtfleet/libvirt path: ansible-test runs only from a real one, not a
# symlink) and give it its own `git init`, so that ansible-test lists files with git (honouring
# .gitignore) instead of the enclosing repository's. One run per DEST at a time: a second would
# delete the copy the first runs in, so it waits on DEST's lock (held until the caller exits).
# Needs ROOT (the repository) and log() from the caller.
fresh_copy() {
  local dest=$1 lock
  lock="$ROOT/.build/$(basename "$(dirname "$(dirname "$(dirname "$dest")")")").lock"
  mkdir -p "$ROOT/.build"
  exec 8>"$lock"
  flock -n 8 || { log "waiting for another run using $dest"; flock 8; }
  rm -rf "$dest"
  mkdir -p "$dest"
  (
    cd "$ROOT" || exit 1
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git ls-files -z -co --exclude-standard
    else
      find . \( -name .git -o -name .venv -o -name .build -o -path ./tests/output \) -prune \
        -o \( -type f -o -type l \) -printf '%P\0'
    fi |
      # ls-files also lists tracked files deleted from the work tree: skip those.
      while IFS= read -r -d '' f; do
        if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
      done |
      tar -cf - --null -T - | tar -xf - -C "$dest"
  )
  git -C "$dest" init -q
}
