#!/usr/bin/env bash
# Fetch libvirt's own test-suite domain XML (tests/qemuxml2xmloutdata/*.xml) for the libvirt
# version this host runs, from the Debian source package, for the corpus test (tests/corpus).
#
#   scripts/corpus.sh [--version V]   prints the corpus directory on stdout; progress on stderr
#   scripts/corpus.sh --snapshot REV  exports the collection as committed at git REV (plugins/,
#                                     meta/, galaxy.yml) to .build/corpus-collections/<sha>/ and
#                                     prints that collections root, for
#                                     VIRTFLEET_CORPUS_COLLECTION=<root> (test a committed engine
#                                     while the working tree is mid-edit)
#
# V defaults to the installed libvirt0's source version (e.g. 9.0.0-4+deb12u2); a Debian
# version or a plain upstream version (9.0.0) is accepted. With VIRTFLEET_TARGET=bullseye|bookworm|
# trixie (tests/_target.py) it is the libvirt0 of that generation's tree (its own dpkg database). The corpus goes to
#   .build/corpus/<upstream version>/*.xml      (.build/ is gitignored)
# so that a Debian 11 (libvirt 7.0) or 13 (11.3) host gets its own. Idempotent: when the
# directory is complete (it has a .complete stamp) the script only prints it.
#
# Source: <mirror>/pool/main/libv/libvirt/libvirt_<upstream>.orig.tar.xz, where the mirror is
# $VIRTFLEET_DEBIAN_MIRROR, else http://deb.debian.org/debian, then http://archive.debian.org/debian
# (releases that left the main archive). When the full Debian version is known, its .dsc is
# fetched too and the tarball's SHA256 checked against it. Only the extracted XML is kept.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIRROR=${VIRTFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
POOL=$MIRROR/pool/main/libv/libvirt

log() { echo "[corpus] $*" >&2; }
die() { echo "[corpus] ERROR: $*" >&2; exit 1; }

version=
snapshot=
while (($#)); do
  case $1 in
    --snapshot) snapshot=${2:?--snapshot needs a git revision}; shift 2 ;;
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --version=*) version=${1#--version=}; shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (usage: scripts/corpus.sh [--version V])" ;;
  esac
done
if [[ -n $snapshot ]]; then
  sha=$(git -C "$ROOT" rev-parse --verify "$snapshot^{commit}") || die "not a git revision: $snapshot"
  root=$ROOT/.build/corpus-collections/$sha
  coll=$root/ansible_collections/virtfleet/libvirt
  if [[ ! -f $root/.complete ]]; then
    rm -rf "$root"; mkdir -p "$coll"
    git -C "$ROOT" archive "$sha" plugins meta galaxy.yml | tar -x -C "$coll"
    touch "$root/.complete"
    log "collection at ${sha:0:12} exported to $root"
  fi
  echo "$root"
  exit 0
fi
if [[ -z $version ]]; then
  admin=()
  case ${VIRTFLEET_TARGET:-lab} in
    lab) ;;
    bullseye|bookworm|trixie)
      admin=(--admindir="${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}/$VIRTFLEET_TARGET/var/lib/dpkg") ;;
    *) die "VIRTFLEET_TARGET=$VIRTFLEET_TARGET is not a target (lab bullseye bookworm trixie)" ;;
  esac
  version=$(dpkg-query "${admin[@]}" -W -f='${source:Version}' libvirt0 2>/dev/null) \
    || die "libvirt0 is not installed${admin:+ in ${admin[0]#--admindir=}} (scripts/generations.sh up?); pass --version V"
fi

# Debian version [epoch:]upstream[-revision] -> upstream
debian_version=
upstream=${version#*:}
if [[ $upstream == *-* ]]; then
  debian_version=$upstream
  upstream=${upstream%-*}
fi
[[ $upstream =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "not a libvirt version: $version"

dest=$ROOT/.build/corpus/$upstream
if [[ -f $dest/.complete ]]; then
  echo "$dest"
  exit 0
fi

command -v curl >/dev/null || die "curl is needed"
command -v xz >/dev/null || die "xz is needed (apt-get install xz-utils)"

work=$(mktemp -d "$ROOT/.build/corpus-dl.XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=libvirt_$upstream.orig.tar.xz

pools=("$POOL")
[[ -n ${VIRTFLEET_DEBIAN_MIRROR:-} ]] || pools+=(http://archive.debian.org/debian/pool/main/libv/libvirt)
got=
for POOL in "${pools[@]}"; do
  log "libvirt $upstream${debian_version:+ (Debian $debian_version)}: downloading $POOL/$tarball"
  if curl -fsSL --retry 3 --connect-timeout 20 -o "$work/$tarball" "$POOL/$tarball"; then got=1; break; fi
  log "not at $POOL"
done
[[ -n $got ]] || die "download failed: $tarball is in none of ${pools[*]} (set VIRTFLEET_DEBIAN_MIRROR, e.g. to a snapshot.debian.org archive URL)"

if [[ -n $debian_version ]]; then
  dsc=libvirt_$debian_version.dsc
  if curl -fsSL --retry 2 --connect-timeout 20 -o "$work/$dsc" "$POOL/$dsc" 2>/dev/null ||
     curl -fsSL --retry 2 --connect-timeout 20 -o "$work/$dsc" "${MIRROR%/debian}/debian-security/pool/updates/main/libv/libvirt/$dsc" 2>/dev/null; then
    want=$(awk -v f="$tarball" '/^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0} s && $3==f {print $1}' "$work/$dsc")
    have=$(sha256sum "$work/$tarball" | cut -d' ' -f1)
    [[ -n $want ]] || die "$dsc does not list $tarball"
    [[ $want == "$have" ]] || die "SHA256 of $tarball is $have, $dsc says $want"
    log "SHA256 matches $dsc"
  else
    log "warning: $POOL/$dsc not found; tarball not verified"
  fi
fi

mkdir -p "$work/x" "$work/out"
# The listing goes to a file first: under pipefail, grep -q stopping at the first match makes tar die
# of SIGPIPE and the test false (it took the 9.0.0 tarball for one without qemuxml2xmloutdata).
tar -tJf "$work/$tarball" > "$work/listing" || die "cannot list $tarball"
if grep -q '/tests/qemuxml2xmloutdata/' "$work/listing"; then
  log "extracting tests/qemuxml2xmloutdata/*.xml"
  # About a fifth of the xmlout files are symlinks into qemuxml2argvdata (the output equals the
  # input): extract that directory's XML too, so that they resolve, and keep only xmlout.
  tar -xJf "$work/$tarball" -C "$work/x" --wildcards --no-anchored \
    'tests/qemuxml2xmloutdata/*.xml' 'tests/qemuxml2argvdata/*.xml'
  src=$(find "$work/x" -type d -path '*/tests/qemuxml2xmloutdata' -print -quit)
  outputs='.*'
else
  # libvirt 10.x and later (11.3 in Debian 13) keep input and output of the QEMU XML tests in one
  # directory, tests/qemuxmlconfdata: NAME.xml is the input, NAME.<arch>-<caps>[.<variant>].xml
  # libvirt's own output (e.g. disk-cache.x86_64-latest.xml), which is what qemuxml2xmloutdata held.
  log "extracting the xml2xml outputs of tests/qemuxmlconfdata (no qemuxml2xmloutdata in libvirt $upstream)"
  tar -xJf "$work/$tarball" -C "$work/x" --wildcards --no-anchored 'tests/qemuxmlconfdata/*.xml'
  src=$(find "$work/x" -type d -path '*/tests/qemuxmlconfdata' -print -quit)
  outputs='.*\.[a-z0-9_]+-(latest|[0-9]+\.[0-9]+\.[0-9]+)(\.[a-z0-9-]+)?\.xml'
fi
[[ -n $src ]] || die "$tarball has neither tests/qemuxml2xmloutdata nor tests/qemuxmlconfdata"
find "$src" -maxdepth 1 -name '*.xml' \( -type f -o -type l \) -regextype posix-extended -regex "$outputs" -print0 \
  | while IFS= read -r -d '' f; do
      if [[ -e $f ]]; then cp -L "$f" "$work/out/"; else log "skipping dangling symlink ${f##*/}"; fi
    done
count=$(find "$work/out" -name '*.xml' | wc -l)
((count > 0)) || die "no XML extracted"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
printf '%s\n' "libvirt $upstream${debian_version:+ (Debian $debian_version)} from $POOL/$tarball" > "$work/out/.complete"
mv "$work/out" "$dest"
log "$count files in $dest"
echo "$dest"
