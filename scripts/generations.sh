#!/usr/bin/env bash
# A MIXED-GENERATION test fleet on this one machine (Debian 12, root, no systemd): one hypervisor
# per Debian release, each a chroot built from Debian's archive with its own libvirtd, QEMU,
# Python, python3-libvirt and python3-lxml, reachable by Ansible over SSH on 127.0.0.1 only.
#
#   host      Debian  libvirt  QEMU  Python  ssh                     modules' URI
#   bullseye  11      7.0      5.2   3.9     root@127.0.0.1:22311    qemu:///system (of the chroot)
#   bookworm  12      9.0      7.2   3.11    root@127.0.0.1:22312    qemu:///system (of the chroot)
#   trixie    13      11.3     10.0  3.13    root@127.0.0.1:22313    qemu:///system (of the chroot)
#
# Each host is the tree /var/lib/virtfleet-gen/<codename> (debootstrap --variant=minbase plus the
# packages below). Inside it run the chroot's own virtlogd and libvirtd (system mode, as root;
# socket <tree>/run/libvirt/libvirt-sock, never the machine's /run) and the chroot's own sshd on
# its port, which lets in only root with the key .build/gen/id_ed25519. An SSH login therefore
# lands in that release's userland: /usr/bin/python3 there is the release's Python with its own
# bindings, and qemu:///system there is the release's daemon. Domains are type='qemu' (TCG).
# Mounts per tree: the tree itself (bind), proc, sysfs (without the machine's cgroup mounts: libvirt uses no cgroups
# here, so the daemons never meet in /sys/fs/cgroup/machine), a non-recursive bind of /dev,
# /dev/pts, a private tmpfs on /dev/shm and on /run.
#
#   scripts/generations.sh up [CODENAME...]   build what is missing (cached), mount, start the
#                           daemons, wait until `ssh -p PORT root@127.0.0.1 virsh version` answers.
#                           Idempotent; warm (everything running) about a second, cold ~3 min.
#   scripts/generations.sh status             trees, mounts, daemons, ssh round trip, domains; exit 1
#                                             if a host is not up
#   scripts/generations.sh versions [--json]  one line per host: name, URI, libvirt, QEMU, Python,
#                                             measured over SSH with that host's own tools
#   scripts/generations.sh down [CODENAME...] destroy running domains, stop sshd, libvirtd and
#                           virtlogd and every other process whose root is the tree, unmount everything
#                           under the tree (the tree stays: the next `up` is warm)
#   scripts/generations.sh purge [--cache]    down, delete the trees (and, with --cache, the cached
#                                             debs and root file system tarballs)
#   scripts/generations.sh restart-libvirt CODENAME   restart that host's libvirtd (it reads
#                           /etc/libvirt/qemu/*.xml only at start: definitions the API refuses)
#
# The UPGRADE host (not one of the three shared hosts; only `up upgrade` / `reset upgrade` start it):
#   upgrade   Debian 11 -> 12 by apt   root@127.0.0.1:22321   a fresh Debian 11 tree unpacked from the
#             bullseye tarball, for tests that upgrade a host for real (tests/generations/test_rolling_upgrade.py).
#             /etc/apt/sources.list.virtfleet-next in it names the next suite (bookworm, same mirrors);
#             /var/cache/apt/archives in it is a bind of $CACHE/apt/bullseye-to-bookworm, so the .debs of
#             the upgrade are downloaded once. Never updated in place by `up` (it holds the upgraded state).
#   scripts/generations.sh reset upgrade      down, delete the tree, unpack a fresh Debian 11 one, up (~20 s)
#   scripts/generations.sh restart-daemons CODENAME   restart libvirtd, virtlogd and sshd of a host, as
#                           an upgrade's maintainer scripts do on a real host (policy-rc.d stops them
#                           here); virtlogd only while no guest runs (it holds their log pipes), and
#                           sshd's open sessions survive (only its listener is replaced). ~8 s
#   status / versions / down take host names too (default: the three shared hosts; down: every tree).
#
# Cache (/var/cache/virtfleet-gen): the .debs debootstrap and apt fetched (debs/<codename>,
# apt/<codename>) and a zstd tarball of each provisioned tree (<codename>-<hash>.tar.zst, hash of
# suite, mirror and package list). A purged tree comes back from the tarball without a download.
# Needs root. Progress on stderr. Leaves qemu:///system of the machine, the SSH fleet of
# scripts/fleet.sh (ports 2220N) and any system sshd alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL=(bullseye bookworm trixie)   # the three shared generation hosts
EXTRA=(upgrade)                  # hosts that tests upgrade for real (own trees, own ports)
# HOSTNUM: the port (22300 + n) and VNC range of a host; SUITE: the Debian suite its tree starts from;
# NEXT: the suite it is upgraded to (sources.list.virtfleet-next, the apt cache bound into it).
declare -A HOSTNUM=([bullseye]=11 [bookworm]=12 [trixie]=13 [upgrade]=21)
declare -A SUITE=([bullseye]=bullseye [bookworm]=bookworm [trixie]=trixie [upgrade]=bullseye)
declare -A NEXT=([upgrade]=bookworm)
declare -A DEBVER=([bullseye]=11 [bookworm]=12 [trixie]=13)   # of each suite
STATE=${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}
CACHE=${VIRTFLEET_GEN_CACHE:-/var/cache/virtfleet-gen}
MIRROR=${VIRTFLEET_GEN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${VIRTFLEET_GEN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEY_DIR=$ROOT/.build/gen
KEY=$KEY_DIR/id_ed25519
PORT_BASE=22300           # + Debian version: 22311, 22312, 22313
URI=qemu:///system        # inside each chroot
LOCK_FILE=/run/virtfleet-gen.lock
MARKER='# managed by virtfleet scripts/generations.sh'
STAMP_FILE=etc/virtfleet-gen.stamp
# Installed into every tree with --no-install-recommends. libvirt-daemon-system is deliberately
# absent (polkit, iptables, systemd units). seabios/ipxe-qemu: firmware and NIC option ROMs.
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
      seabios ipxe-qemu python3 python3-libvirt python3-lxml openssh-server procps)
SSH_OPTS=(-i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o ConnectTimeout=5 -o ControlMaster=no -o ControlPath=none)
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "[gen] $*" >&2; }
glog() { local g=$1; shift; echo "[gen:$g] $*" >&2; }
die() { echo "[gen] ERROR: $*" >&2; exit 1; }
gdie() { local g=$1; shift; echo "[gen:$g] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

tree() { echo "$STATE/$1"; }
port_of() { echo $((PORT_BASE + HOSTNUM[$1])); }
check_gen() { [[ -n ${HOSTNUM[${1:-}]+x} ]] || die "unknown host '${1:-}' (known: ${ALL[*]} ${EXTRA[*]})"; }
is_extra() { [[ -n ${NEXT[$1]+x} ]]; }
upgrade_cache() { echo "$CACHE/apt/${SUITE[$1]}-to-${NEXT[$1]}"; }

# The environment of a clean login: nothing of the caller's (venv PATH, PYTHONPATH, LIBVIRT_*) leaks in.
in_chroot() {
  local g=$1; shift
  env -i PATH=$CHROOT_PATH HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
    chroot "$(tree "$g")" "$@" 9>&-
}
vsh() { local g=$1; shift; in_chroot "$g" virsh -q -c "$URI" "$@"; }

want_stamp() {  # what a provisioned tree of $1 must say it holds
  printf 'suite=%s\nmirror=%s\nsecurity=%s\npackages=%s\n' "$1" "$MIRROR" "$SECURITY_MIRROR" "${PKGS[*]}"
}
stamp_hash() { want_stamp "$1" | sha256sum | cut -c1-12; }
tarball() { echo "$CACHE/$1-$(stamp_hash "$1").tar.zst"; }

# write_if_changed and sshd_config_common (shared with the other test fleet's script)
# shellcheck source=scripts/_hostlib.sh
. "$ROOT/scripts/_hostlib.sh"

# --- processes ---------------------------------------------------------------------------------

# A process belongs to a tree when its root directory is that tree: the daemons, sshd, its
# sessions and the QEMU guests all do, nothing else on the machine can.
procs_in() {  # $1 tree path -> pids
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [[ $r == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

# Alive: the pidfile names a non-zombie process with that name whose root is the tree. PID 1 here
# reaps daemonised children late, so `kill -0` alone reports a dead daemon as alive.
alive_pid() {  # $1 generation, $2 pidfile inside the tree, $3 comm -> prints the pid when alive
  local t pid state
  t=$(tree "$1")
  pid=$(cat "$t$2" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $state != Z* && $state == *" $3" ]] || return 1
  [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$t" ]] || return 1
  echo "$pid"
}

stop_pid() {  # $1 generation, $2 pidfile, $3 comm: TERM, KILL after 10 s
  local pid _
  pid=$(alive_pid "$1" "$2" "$3") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" "$3" >/dev/null || return 0; sleep 0.1; done
  glog "$1" "$3 (pid $pid) ignored SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" "$3" >/dev/null || return 0; sleep 0.1; done
  gdie "$1" "$3 (pid $pid) does not die"
}

kill_tree_procs() {  # every process still rooted in the tree: TERM, then KILL; wait until gone
  local g=$1 t pids _
  t=$(tree "$g")
  pids=$(procs_in "$t")
  [[ -z $pids ]] && return 0
  glog "$g" "stopping leftover processes: $(for p in $pids; do printf '%s(%s) ' "$p" "$(ps -o comm= -p "$p" 2>/dev/null)"; done)"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do [[ -z $(procs_in "$t") ]] && return 0; sleep 0.1; done
  pids=$(procs_in "$t")
  # shellcheck disable=SC2086
  if [[ -n $pids ]]; then kill -KILL $pids 2>/dev/null || true; fi
  for _ in $(seq 100); do [[ -z $(procs_in "$t") ]] && return 0; sleep 0.1; done
  gdie "$g" "processes rooted in $t do not die: $(procs_in "$t" | tr '\n' ' ')"
}

# --- mounts ------------------------------------------------------------------------------------

mounts_under() {  # $1 path -> mount points at or under it, deepest first
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

mount_one() {  # $1 target, then the mount arguments; no-op when already mounted
  local target=$1; shift
  mountpoint -q "$target" && return 0
  mkdir -p "$target"
  mount "$@" "$target"
}

mount_tree() {
  local t; t=$(tree "$1")
  # The tree is a bind mount of itself: libvirt's QEMU driver makes "/" a slave mount in each
  # guest's mount namespace, which fails when "/" is not a mount point ("Failed disable mount
  # propagation out of the root filesystem: Invalid argument" at every domain start).
  if ! mountpoint -q "$t"; then
    [[ -z $(procs_in "$t") ]] || gdie "$1" "processes run in $t without its own mount: run scripts/generations.sh down $1 first"
    umount_tree "$t"
    mount --bind "$t" "$t"
  fi
  mount_one "$t/proc" -t proc proc
  mount_one "$t/sys" -t sysfs sysfs
  mount_one "$t/dev" --bind /dev
  mount_one "$t/dev/pts" --bind /dev/pts
  mount_one "$t/dev/shm" -t tmpfs -o mode=1777,size=256m tmpfs
  mount_one "$t/run" -t tmpfs -o mode=0755,size=64m tmpfs
  if is_extra "$1"; then   # the upgrade's .debs outlive the tree (reset), so CI downloads them once
    mkdir -p "$(upgrade_cache "$1")"
    mount_one "$t/var/cache/apt/archives" --bind "$(upgrade_cache "$1")"
  fi
}

umount_tree() {  # $1 tree path; unmounts everything under it, deepest first
  local t=$1 m left
  for m in $(mounts_under "$t"); do
    umount "$m" 2>/dev/null || { log "umount $m: busy, detaching it lazily"; umount -l "$m"; }
  done
  left=$(mounts_under "$t")
  [[ -z $left ]] || die "still mounted under $t: $left"
}

# --- building a tree (cached) ------------------------------------------------------------------

apt_sources() {  # $1 suite -> sources.list of the tree
  echo "$MARKER"
  echo "deb $MIRROR $1 main"
  echo "deb $MIRROR $1-updates main"
  echo "deb $SECURITY_MIRROR $1-security main"
}

provision() {  # $1 generation, $2 tree path (being built): packages into a fresh debootstrap tree
  local g=$1 t=$2 t0
  apt_sources "$g" > "$t/etc/apt/sources.list"
  # No service may start while packages are installed (openssh-server and libvirt-daemon try).
  printf '#!/bin/sh\n%s\nexit 101\n' "$MARKER" > "$t/usr/sbin/policy-rc.d"; chmod 0755 "$t/usr/sbin/policy-rc.d"
  mkdir -p "$t/etc/ssh"; echo "$MARKER" > "$t/etc/ssh/sshd_not_to_be_run"
  cp -L /etc/resolv.conf "$t/etc/resolv.conf"
  mkdir -p "$CACHE/apt/$g" "$t/var/cache/apt/archives"
  mount_one "$t/proc" -t proc proc
  mount_one "$t/dev" --bind /dev
  mount_one "$t/dev/pts" --bind /dev/pts
  mount_one "$t/var/cache/apt/archives" --bind "$CACHE/apt/$g"
  t0=$(now)
  env -i PATH=$CHROOT_PATH HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    chroot "$t" apt-get -q -o Acquire::Retries=3 update > "$t.apt.log" 2>&1 ||
    { umount_tree "$t"; gdie "$g" "apt-get update failed: $(tail -n 5 "$t.apt.log")"; }
  env -i PATH=$CHROOT_PATH HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    chroot "$t" apt-get -q -y -o Acquire::Retries=3 install --no-install-recommends "${PKGS[@]}" >> "$t.apt.log" 2>&1 ||
    { umount_tree "$t"; gdie "$g" "apt-get install failed: $(tail -n 15 "$t.apt.log")"; }
  umount_tree "$t"
  rm -f "$t.apt.log"
  glog "$g" "packages installed in $(since "$t0") ($(chroot "$t" dpkg-query -W -f='.\n' | wc -l) packages)"
}

cache_tree() {  # $1 generation, $2 provisioned tree (nothing mounted, no host configuration yet)
  local tb t1; tb=$(tarball "$1"); t1=$(now)
  tar -C "$2" --zstd --numeric-owner -cpf "$tb.tmp" . && mv "$tb.tmp" "$tb"
  glog "$1" "cached the tree as $tb ($(du -sh "$tb" | cut -f1), $(since "$t1"))"
}

tree_current() {
  # An upgrade host's tree is current as long as it exists: it holds the upgraded system (`reset` renews it).
  if is_extra "$1"; then [[ -f $(tree "$1")/$STAMP_FILE ]]; return; fi
  [[ -f $(tree "$1")/$STAMP_FILE ]] && want_stamp "$1" | cmp -s - "$(tree "$1")/$STAMP_FILE"
}

build_extra() {  # an upgrade host: a copy of its suite's cached tree (never built or updated here)
  local g=$1 s=${SUITE[$1]} t part tb t0
  t=$(tree "$g"); part=$t.partial; tb=$(tarball "$s"); t0=$(now)
  [[ -f $t/$STAMP_FILE ]] && return 0
  [[ -s $tb ]] || gdie "$g" "no cached $s tree ($tb): run scripts/generations.sh up $s first (it builds and caches it)"
  [[ -e $t ]] && gdie "$g" "$t exists but is no provisioned tree: scripts/generations.sh reset $g"
  umount_tree "$part"
  rm -rf --one-file-system "$part"
  mkdir -p "$part"
  glog "$g" "unpacking a fresh $s tree from $tb"
  tar -C "$part" --zstd --numeric-owner -xpf "$tb"
  mv "$part" "$t"
  glog "$g" "tree ready in $(since "$t0") ($s, to be upgraded to ${NEXT[$g]})"
}

build_tree() {  # makes $(tree g) hold the wanted packages; cheap when it already does
  local g=$1 t tb t0 part
  if is_extra "$g"; then build_extra "$g"; return; fi
  t=$(tree "$g"); tb=$(tarball "$g"); part=$t.partial
  tree_current "$g" && return 0
  t0=$(now)
  if [[ -d $t ]]; then
    # An older tree (the package list changed): add what is missing in place. Nothing may run in it.
    glog "$g" "tree $t predates the current package list: updating it in place"
    [[ -z $(procs_in "$t") ]] || gdie "$g" "processes still run in $t"
    umount_tree "$t"
    provision "$g" "$t"
    want_stamp "$g" > "$t/$STAMP_FILE"
    # Not cached: this tree holds host state now (keys, domains, logs). `purge` + `up` builds a
    # clean one from the cached .debs.
  else
    umount_tree "$part"
    rm -rf --one-file-system "$part"
    mkdir -p "$part" "$CACHE"
    if [[ -s $tb ]]; then
      glog "$g" "unpacking the cached tree $tb"
      tar -C "$part" --zstd --numeric-owner -xpf "$tb"
    else
      glog "$g" "cold build: debootstrap --variant=minbase $g from $MIRROR (log: $part.debootstrap.log)"
      mkdir -p "$CACHE/debs/$g"
      debootstrap --variant=minbase --cache-dir="$CACHE/debs/$g" "$g" "$part" "$MIRROR" > "$part.debootstrap.log" 2>&1 ||
        { umount_tree "$part"; gdie "$g" "debootstrap failed: $(tail -n 10 "$part.debootstrap.log")"; }
      rm -f "$part.debootstrap.log"
      glog "$g" "debootstrap done in $(since "$t0"); installing ${PKGS[*]}"
      provision "$g" "$part"
      want_stamp "$g" > "$part/$STAMP_FILE"
      cache_tree "$g" "$part"
    fi
    mv "$part" "$t"
  fi
  glog "$g" "tree ready in $(since "$t0"): $(du -sh --one-file-system "$t" | cut -f1)"
}

# --- per-host configuration (every up; cheap and idempotent) ---------------------------------

ensure_key() { ensure_ssh_key "$KEY" virtfleet-gen; }

# Prints "restart" when libvirtd must be restarted to read a changed configuration.
configure() {
  local g=$1 t n restart=
  t=$(tree "$g"); n=${HOSTNUM[$g]}
  # What libvirt-daemon-system would do: the QEMU driver resolves its compiled-in user before
  # qemu.conf is read ("Failed to parse user 'libvirt-qemu'"), so the user must exist.
  grep -q '^libvirt-qemu:' "$t/etc/group" || in_chroot "$g" groupadd -r libvirt-qemu >&2
  grep -q '^libvirt-qemu:' "$t/etc/passwd" ||
    in_chroot "$g" useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu >&2
  # '*' instead of a locked '!': with UsePAM no, sshd refuses an account whose password is locked.
  [[ $(awk -F: '$1 == "root" { print $2 }' "$t/etc/shadow") == '*' ]] || in_chroot "$g" usermod -p '*' root >&2
  mkdir -p "$t/var/log/libvirt/qemu" "$t/var/lib/libvirt/images" "$t/etc/libvirt/qemu" "$t/root/.ssh"
  # root: images anywhere, no relabelling. No cgroups: the machine's libvirtd and the other trees
  # would share /sys/fs/cgroup/*/machine. Own VNC/SPICE range per host: all share one network stack.
  local lo=$((6100 + 20 * (n - 11)))
  # namespaces = [ ]: in these chroots the private /dev libvirt builds for each QEMU comes out empty
  # (no /dev/null, /dev/urandom) on 7.0, 9.0 and 11.3 alike, so an rng backend, a block device or
  # QEMU 10's own entropy source fail to start (measured by the suites; tests/_target.py).
  if printf '%s\nuser = "root"\ngroup = "root"\ncgroup_controllers = [ ]\nremote_display_port_min = %d\nremote_display_port_max = %d\nnamespaces = [ ]\n' \
      "$MARKER" "$lo" $((lo + 19)) | write_if_changed "$t/etc/libvirt/qemu.conf" 0644; then restart=1; fi
  if printf '%s\nlog_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n' "$MARKER" |
      write_if_changed "$t/etc/libvirt/libvirtd.conf" 0644; then restart=1; fi
  local d=$t/etc/ssh/virtfleet
  mkdir -p "$d"
  [[ -s $d/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "gen-$g" -f "$d/ssh_host_ed25519_key"
  write_if_changed "$d/authorized_keys" 0644 < "$KEY.pub" || true
  write_if_changed "$d/sshd_config" 0644 <<EOF || true
$MARKER (host $g). Started inside the tree as: /usr/sbin/sshd -f /etc/ssh/virtfleet/sshd_config -E /var/log/sshd-virtfleet.log
Port $(port_of "$g")
ListenAddress 127.0.0.1
AddressFamily inet
HostKey /etc/ssh/virtfleet/ssh_host_ed25519_key
PidFile /run/sshd-virtfleet.pid
AuthorizedKeysFile /etc/ssh/virtfleet/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
$(sshd_config_common)
EOF
  printf '%s\nname=%s\ndebian=%s\nport=%s\nuri=%s\n' "$MARKER" "$g" "${DEBVER[${SUITE[$g]}]}" "$(port_of "$g")" "$URI" |
    write_if_changed "$t/etc/virtfleet-gen.host" 0644 || true
  if is_extra "$g"; then   # what the upgrade step puts in place of sources.list
    apt_sources "${NEXT[$g]}" | write_if_changed "$t/etc/apt/sources.list.virtfleet-next" 0644 || true
  fi
  [[ -n $restart ]] && echo restart
  return 0
}

# --- daemons -----------------------------------------------------------------------------------

libvirt_answers() { vsh "$1" version >/dev/null 2>&1; }

start_daemon() {  # $1 generation, $2 virtlogd | libvirtd
  local g=$1 d=$2 t _
  t=$(tree "$g")
  alive_pid "$g" "/run/$d.pid" "$d" >/dev/null && return 0
  in_chroot "$g" "$d" -d || gdie "$g" "$d -d failed (exit $?); $t/var/log/libvirt/$d.log:
$(tail -n 15 "$t/var/log/libvirt/$d.log" 2>/dev/null)"
  for _ in $(seq 50); do alive_pid "$g" "/run/$d.pid" "$d" >/dev/null && return 0; sleep 0.1; done
  gdie "$g" "$d did not stay up; $t/var/log/libvirt/$d.log:
$(tail -n 15 "$t/var/log/libvirt/$d.log" 2>/dev/null)"
}

wait_libvirt() {
  local g=$1 _
  for _ in $(seq 100); do libvirt_answers "$g" && return 0; sleep 0.1; done
  gdie "$g" "$URI does not answer; $(tree "$g")/var/log/libvirt/libvirtd.log:
$(tail -n 15 "$(tree "$g")/var/log/libvirt/libvirtd.log" 2>/dev/null)"
}

ssh_host() {  # $1 generation, then the remote command
  local g=$1; shift
  ssh "${SSH_OPTS[@]}" -p "$(port_of "$g")" root@127.0.0.1 "$@"
}
ssh_answers() { ssh_host "$1" virsh -q -c "$URI" version >/dev/null 2>&1; }

start_sshd() {
  local g=$1 t _
  t=$(tree "$g")
  alive_pid "$g" /run/sshd-virtfleet.pid sshd >/dev/null && return 0
  mkdir -p "$t/run/sshd"; chmod 0755 "$t/run/sshd"   # privilege separation directory
  in_chroot "$g" /usr/sbin/sshd -t -f /etc/ssh/virtfleet/sshd_config || gdie "$g" "invalid /etc/ssh/virtfleet/sshd_config"
  in_chroot "$g" /usr/sbin/sshd -f /etc/ssh/virtfleet/sshd_config -E /var/log/sshd-virtfleet.log ||
    gdie "$g" "sshd failed (exit $?); $t/var/log/sshd-virtfleet.log: $(tail -n 10 "$t/var/log/sshd-virtfleet.log" 2>/dev/null)"
  for _ in $(seq 50); do alive_pid "$g" /run/sshd-virtfleet.pid sshd >/dev/null && return 0; sleep 0.1; done
  gdie "$g" "sshd did not stay up; $t/var/log/sshd-virtfleet.log: $(tail -n 10 "$t/var/log/sshd-virtfleet.log" 2>/dev/null)"
}

wait_ssh() {
  local g=$1 _
  for _ in $(seq 50); do ssh_answers "$g" && return 0; sleep 0.2; done
  gdie "$g" "ssh -p $(port_of "$g") root@127.0.0.1 virsh -c $URI version fails:
$(ssh_host "$g" virsh -c "$URI" version 2>&1 | tail -n 5)
$(tail -n 10 "$(tree "$g")/var/log/sshd-virtfleet.log" 2>/dev/null)"
}

destroy_all() {  # running domains of a host, in parallel (a QEMU process takes ~1.6 s to die)
  local g=$1 name pids=() p rc=0
  for name in $(vsh "$g" list --name --state-running --state-paused --state-other 2>/dev/null); do
    vsh "$g" destroy "$name" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

# --- commands ----------------------------------------------------------------------------------

host_up() {
  local g=$1 t0 restart t
  t0=$(now); t=$(tree "$g")
  if [[ -d $t ]] && ! tree_current "$g"; then host_down "$g"; fi   # packages are added with nothing running
  build_tree "$g"
  restart=$(configure "$g")
  mount_tree "$g"
  if [[ $restart == restart ]] && pid=$(alive_pid "$g" /run/libvirtd.pid libvirtd); then
    glog "$g" "configuration changed: restarting libvirtd"
    stop_pid "$g" /run/libvirtd.pid libvirtd
  fi
  start_daemon "$g" virtlogd
  start_daemon "$g" libvirtd
  wait_libvirt "$g"
  start_sshd "$g"
  wait_ssh "$g"
  glog "$g" "up in $(since "$t0"): root@127.0.0.1:$(port_of "$g") $URI ($(vsh "$g" version --daemon | awk -F': ' '/daemon/ { print "libvirt " $2 }' | tr -d '\n'))"
}

host_down() {
  local g=$1 t
  t=$(tree "$g")
  [[ -d $t ]] || return 0
  stop_pid "$g" /run/sshd-virtfleet.pid sshd
  if alive_pid "$g" /run/libvirtd.pid libvirtd >/dev/null && libvirt_answers "$g"; then destroy_all "$g" || true; fi
  stop_pid "$g" /run/libvirtd.pid libvirtd
  stop_pid "$g" /run/virtlogd.pid virtlogd
  kill_tree_procs "$g"     # ssh sessions, a QEMU that outlived its daemon, dnsmasq, ...
  umount_tree "$t"
  glog "$g" "down (nothing mounted under $t)"
}

parallel() {  # $1 function, then generations; fails when any failed
  local f=$1 g pids=() rc=0 p; shift
  for g in "$@"; do "$f" "$g" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

cmd_up() {
  local t0; t0=$(now)
  "$ROOT/scripts/ensure-apt.sh" debootstrap zstd openssh-client
  ensure_key
  mkdir -p "$STATE" "$CACHE"
  parallel host_up "$@" || die "not every host came up (see above)"
  log "up in $(since "$t0"): $(for g in "$@"; do printf '%s=root@127.0.0.1:%s ' "$g" "$(port_of "$g")"; done)"
}

cmd_down() { parallel host_down "$@"; }

cmd_reset() {  # an upgrade host back to a fresh tree of its suite
  local g=$1 t
  is_extra "$g" || die "reset is for the upgrade host(s) only (${EXTRA[*]}); the shared hosts are never reset"
  t=$(tree "$g")
  host_down "$g"
  if [[ -e $t ]]; then
    [[ -z $(mounts_under "$t") ]] || die "refusing to delete $t: something is mounted under it"
    rm -rf --one-file-system "$t"
  fi
  cmd_up "$g"
}

# What an upgrade's maintainer scripts do on a real host (systemd restarts the daemons there; here
# policy-rc.d keeps them from starting while packages are installed): the new libvirtd, virtlogd and
# sshd binaries take over. sshd's running sessions (an Ansible ControlPersist master) survive: only
# the listener is replaced. virtlogd holds the log pipes of running guests, so it restarts only when
# no guest runs (else it keeps running the old binary and says so).
cmd_restart_daemons() {
  local g=$1 t0 running
  t0=$(now)
  running=$(vsh "$g" list --name --state-running --state-paused 2>/dev/null | grep -c . || true)
  stop_pid "$g" /run/libvirtd.pid libvirtd
  if ((running == 0)); then
    stop_pid "$g" /run/virtlogd.pid virtlogd; start_daemon "$g" virtlogd
  else
    glog "$g" "virtlogd keeps running (old binary): $running guest(s) run"
  fi
  start_daemon "$g" libvirtd; wait_libvirt "$g"
  stop_pid "$g" /run/sshd-virtfleet.pid sshd; start_sshd "$g"; wait_ssh "$g"
  glog "$g" "libvirtd, virtlogd and sshd restarted in $(since "$t0"): $(vsh "$g" version --daemon | awk -F': ' '/daemon/ { print "libvirt " $2 }' | tr -d '\n')"
}

cmd_purge() {
  local g t
  cmd_down "${ALL[@]}" "${EXTRA[@]}"
  for g in "${ALL[@]}" "${EXTRA[@]}"; do
    t=$(tree "$g")
    for t in "$t" "$t.partial"; do
      [[ -e $t ]] || continue
      [[ -z $(mounts_under "$t") ]] || die "refusing to delete $t: something is mounted under it"
      rm -rf --one-file-system "$t" "$t.apt.log" "$t.debootstrap.log"
    done
  done
  rmdir "$STATE" 2>/dev/null || true
  rm -rf "$KEY_DIR"
  if [[ ${1:-} == --cache ]]; then rm -rf "$CACHE"; log "purged $STATE, $KEY_DIR and the cache $CACHE"
  else log "purged $STATE and $KEY_DIR (the cache $CACHE stays: $(du -sh "$CACHE" 2>/dev/null | cut -f1))"; fi
}

cmd_status() {
  local g t rc=0 line pid t0
  for g in "$@"; do
    t=$(tree "$g")
    line="$g (root@127.0.0.1:$(port_of "$g")):"
    if [[ ! -f $t/$STAMP_FILE ]]; then log "$line no tree at $t"; rc=1; continue; fi
    line+=" $(mounts_under "$t" | wc -l) mounts"
    for d in virtlogd libvirtd; do
      if pid=$(alive_pid "$g" "/run/$d.pid" "$d"); then line+=", $d $pid"; else line+=", $d DOWN"; rc=1; fi
    done
    if pid=$(alive_pid "$g" /run/sshd-virtfleet.pid sshd); then line+=", sshd $pid"; else line+=", sshd DOWN"; rc=1; fi
    t0=$(now)
    if ssh_answers "$g"; then line+=", ssh+virsh $(since "$t0")"; else line+=", ssh+virsh FAILS"; rc=1; fi
    if libvirt_answers "$g"; then
      line+=", domains: $(vsh "$g" list --all | awk '{ s = $3; for (i = 4; i <= NF; i++) s = s " " $i; printf "%s(%s) ", $2, s }')"
    fi
    log "$line"
  done
  ((rc == 0)) || log "not up: run scripts/generations.sh up $(printf '%s ' "$@" | sed 's/ $//') (as root)"
  return $rc
}

# Measured on the host itself, over SSH, with its own tools: virsh version (client, daemon,
# hypervisor), qemu-system-x86_64 --version, and that host's python3 with its libvirt bindings and lxml.
PROBE=$(cat <<'EOF'
import json, platform, re, subprocess, sys
import libvirt, lxml.etree
def ver(n):
    return "%d.%d.%d" % (n // 1000000, n // 1000 % 1000, n % 1000)
out = subprocess.run(["virsh", "-c", sys.argv[1], "version", "--daemon"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
def field(label):
    m = re.search(r"Running against daemon: (\S+)" if label == "daemon" else r"Running hypervisor: QEMU (\S+)" if label == "hv"
                  else r"Using library: libvirt (\S+)", out)
    return m.group(1) if m else "?"
qv = subprocess.run(["qemu-system-x86_64", "--version"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.splitlines()[0]
m = re.search(r"version (\S+)", qv)
conn = libvirt.openReadOnly(sys.argv[1])
print(json.dumps({
    "debian": open("/etc/debian_version").read().strip(),
    "libvirt": field("daemon"), "libvirt_library": field("lib"),
    "qemu": m.group(1) if m else "?", "qemu_running": field("hv"), "qemu_banner": qv,
    "bindings": ver(libvirt.getVersion()), "bindings_daemon": ver(conn.getLibVersion()),
    "python": platform.python_version(), "python_executable": sys.executable,
    "lxml": ".".join(map(str, lxml.etree.LXML_VERSION[:3])), "libxml2": ".".join(map(str, lxml.etree.LIBXML_VERSION)),
}))
EOF
)

cmd_versions() {
  local g json rc=0 as_json=
  if [[ ${1:-} == --json ]]; then as_json=--json; shift; fi
  for g in "$@"; do
    if ! json=$(ssh_host "$g" python3 - "$URI" <<< "$PROBE" 2>&1); then
      echo "$g  ssh=root@127.0.0.1:$(port_of "$g")  DOWN: $(tail -n 1 <<< "$json") (run scripts/generations.sh up)"
      rc=1; continue
    fi
    if [[ $as_json == --json ]]; then
      python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d.update(name=sys.argv[2], uri=sys.argv[3], ssh=sys.argv[4]); print(json.dumps(d, sort_keys=True))' \
        "$json" "$g" "$URI" "root@127.0.0.1:$(port_of "$g")"
    else
      python3 -c 'import json, sys; d = json.loads(sys.argv[1])
print("%-9s %-15s %-21s debian=%-6s libvirt=%-7s qemu=%-7s python=%-7s bindings=%-7s lxml=%s" % (
    sys.argv[2], sys.argv[3], "ssh=" + sys.argv[4], d["debian"], d["libvirt"], d["qemu"], d["python"], d["bindings"], d["lxml"]))' \
        "$json" "$g" "$URI" "root@127.0.0.1:$(port_of "$g")"
    fi
  done
  return $rc
}

sub=${1:-}; shift || true
case $sub in
  -h|--help|help|'') sed -n '2,53p' "$0"; exit 0 ;;
  versions|status)
    args=(); hosts=()
    for a in "$@"; do if [[ $a == --* ]]; then args+=("$a"); else check_gen "$a"; hosts+=("$a"); fi; done
    ((${#hosts[@]})) || hosts=("${ALL[@]}")
    if [[ $sub == versions ]]; then cmd_versions "${args[@]}" "${hosts[@]}"; else cmd_status "${hosts[@]}"; fi
    exit ;;
  up|down|purge|restart-libvirt|restart-daemons|reset) ;;
  *) die "unknown subcommand '$sub' (up | status | versions | down | purge | reset HOST | restart-libvirt CODENAME | restart-daemons CODENAME)" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, mounts, one sshd per host)"
gens=()
if [[ $sub != purge ]]; then
  for g in "$@"; do check_gen "$g"; gens+=("$g"); done
  if ((${#gens[@]} == 0)); then
    gens=("${ALL[@]}")
    if [[ $sub == down ]]; then for g in "${EXTRA[@]}"; do [[ -d $(tree "$g") ]] && gens+=("$g"); done; fi
  fi
fi
exec 9>"$LOCK_FILE"
flock 9
case $sub in
  up) cmd_up "${gens[@]}" ;;
  down) cmd_down "${gens[@]}" ;;
  purge) cmd_purge "$@" ;;
  restart-libvirt)
    ((${#gens[@]} == 1 && $# == 1)) || die "restart-libvirt needs exactly one CODENAME"
    t0=$(now); g=${gens[0]}
    stop_pid "$g" /run/libvirtd.pid libvirtd; start_daemon "$g" libvirtd; wait_libvirt "$g"
    glog "$g" "libvirtd restarted (pid $(alive_pid "$g" /run/libvirtd.pid libvirtd)) in $(since "$t0")" ;;
  restart-daemons)
    ((${#gens[@]} == 1 && $# == 1)) || die "restart-daemons needs exactly one CODENAME"
    cmd_restart_daemons "${gens[0]}" ;;
  reset)
    ((${#gens[@]} == 1 && $# == 1)) || die "reset needs exactly one host (${EXTRA[*]})"
    cmd_reset "${gens[0]}" ;;
esac
