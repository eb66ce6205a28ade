#!/usr/bin/env bash
# A test FLEET of three independent libvirt hypervisors on this one machine (Debian 12, root,
# no systemd), reachable by Ansible over SSH on 127.0.0.1 only.
#
# Host N (1..3) is the Unix user vfhvN running its own SESSION libvirtd (qemu:///session; state
# in ~/.config/libvirt and ~/.cache/libvirt, socket ~/.cache/libvirt/libvirt-sock because no
# XDG_RUNTIME_DIR is set, neither here nor in an SSH login) and its own sshd on 127.0.0.1:2220N
# (config, host key, authorized_keys, pidfile and log in /var/lib/virtfleet-fleet/hvN) that lets
# in only vfhvN with the key .build/fleet/id_ed25519. Domains are type='qemu' (TCG) with
# user-mode networking and no option ROM; nothing talks to an address outside this machine.
#
#   scripts/fleet.sh up               packages, users, key, session libvirtd + sshd per host; waits
#                                     until `ssh -p 2220N vfhvN@127.0.0.1 virsh -c qemu:///session
#                                     list --all` answers on every host. Idempotent (warm: < 1 s).
#   scripts/fleet.sh seed             every host: destroy + undefine every domain, delete images and
#                                     backups, define the fixture of tests/fleet/domains/manifest.tsv
#                                     (legacy ones written into ~/.config/libvirt/qemu/ + daemon
#                                     restart), start the 'running' ones. Hosts in parallel.
#   scripts/fleet.sh status           daemons, ssh round trip and domains per host; exit 1 if not up
#   scripts/fleet.sh down             stop sshd, running domains and session daemons (keeps users,
#                                     images and keys: the next `up` is warm)
#   scripts/fleet.sh purge            down, then delete the users, their homes and the state dir
#   scripts/fleet.sh stop-host N      stop host N's sshd and its open sessions (Ansible: UNREACHABLE)
#   scripts/fleet.sh start-host N     start host N's sshd again and wait until it answers
#   scripts/fleet.sh restart-libvirt N  restart host N's session libvirtd, wait until it answers
#
#   scripts/fleet.sh inventory        print the path of the Ansible inventory of these hosts
#
# VIRTFLEET_TARGET=bullseye|bookworm|trixie (tests/_target.py): the same three hosts, but inside that
# generation's tree (/var/lib/virtfleet-gen/<name>, built by scripts/generations.sh): the users,
# their homes, the session libvirtd, QEMU, Python and sshd are that release's. Ports 222G1-222G3
# (G = 1, 2, 3 for Debian 11, 12, 13), inventory .build/fleet-<name>/inventory.yml (written by `up`),
# own lock. The default target (lab) is the machine itself, as above.
#
# Needs root. Progress on stderr. Leaves the system libvirtd (qemu:///system) and any system
# sshd alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${VIRTFLEET_TARGET:-lab}
case $TARGET in
  lab) R=; PORT_BASE=22200; VNC_BASE=5950 ;;
  bullseye) R=${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}/$TARGET; PORT_BASE=22210; VNC_BASE=6230 ;;
  bookworm) R=${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}/$TARGET; PORT_BASE=22220; VNC_BASE=6290 ;;
  trixie) R=${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}/$TARGET; PORT_BASE=22230; VNC_BASE=6350 ;;
  *) echo "[fleet] ERROR: VIRTFLEET_TARGET=$TARGET is not a target (lab bullseye bookworm trixie)" >&2; exit 2 ;;
esac
HOSTS=(1 2 3)
STATE=/var/lib/virtfleet-fleet    # inside the target host (R + STATE from here)
KEY_DIR=$ROOT/.build/fleet
KEY=$KEY_DIR/id_ed25519
FIXTURES=$ROOT/tests/fleet/domains
MANIFEST=$FIXTURES/manifest.tsv
LOCK_FILE=/run/virtfleet-fleet${R:+-$TARGET}.lock
INVENTORY=$ROOT/tests/fleet/inventory.yml
[[ -z $R ]] || INVENTORY=$ROOT/.build/fleet-$TARGET/inventory.yml
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DOMAIN_TYPE=qemu          # TCG: /dev/kvm may exist here but a Linux guest never boots under it
MARKER='# managed by virtfleet scripts/fleet.sh'
# python3-venv: the fleet tests give a host a Python without libvirt-python (the roles' prerequisite check).
PKGS=(openssh-server openssh-client python3-libvirt python3-lxml python3-venv
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils)
SSH_OPTS=(-i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o ConnectTimeout=5 -o ControlMaster=no -o ControlPath=none)

log() { echo "[fleet${R:+:$TARGET}] $*" >&2; }
die() { echo "[fleet${R:+:$TARGET}] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

user_of() { echo "vfhv$1"; }
home_of() { echo "/home/vfhv$1"; }           # as the host (and its user) sees it
hhome() { echo "$R/home/vfhv$1"; }           # the same directory as this script sees it
port_of() { echo $((PORT_BASE + $1)); }
hdir() { echo "$STATE/hv$1"; }               # inside the host
hhdir() { echo "$R$STATE/hv$1"; }            # from here
# uid:gid of host N's user in the host's own passwd (a generation tree has its own)
ids_of() { awk -F: -v u="$(user_of "$1")" '$1 == u { print $3 ":" $4 }' "$R/etc/passwd"; }
user_exists() { [[ -n $(ids_of "$1") ]]; }
# Commands as root on the target host (inside its tree on a generation).
in_host() {
  if [[ -n $R ]]; then env -i PATH=$CHROOT_PATH HOME=/root LANG=C.UTF-8 chroot "$R" "$@" 9>&-; else "$@" 9>&-; fi
}
check_n() {
  if ! [[ ${1:-} =~ ^[0-9]+$ ]] || ((${1} < 1 || ${1} > ${#HOSTS[@]})); then
    die "host must be 1..${#HOSTS[@]}, got '${1:-}'"
  fi
}

# Run a command as host N's user with the environment an SSH login of that user gets (no
# XDG_RUNTIME_DIR, so libvirt's session socket is ~/.cache/libvirt/libvirt-sock either way).
# LIBVIRT_AUTOSTART=0: a client must never spawn a replacement daemon behind our back.
# On a generation target the command runs inside its tree (that release's runuser, virsh, ...).
as_user() {
  local n=$1; shift
  if [[ -n $R ]]; then
    env -i PATH=$CHROOT_PATH chroot "$R" env -C "$(home_of "$n")" runuser -u "$(user_of "$n")" -- env -i HOME="$(home_of "$n")" \
      USER="$(user_of "$n")" LOGNAME="$(user_of "$n")" SHELL=/bin/bash LANG=C.UTF-8 \
      PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LIBVIRT_AUTOSTART=0 "$@" 9>&-
    return
  fi
  (cd "$(home_of "$n")" && runuser -u "$(user_of "$n")" -- env -i HOME="$(home_of "$n")" \
    USER="$(user_of "$n")" LOGNAME="$(user_of "$n")" SHELL=/bin/bash LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LIBVIRT_AUTOSTART=0 "$@" 9>&-)
}
vsh() { local n=$1; shift; as_user "$n" virsh -q -c qemu:///session "$@"; }

# A daemon is alive when its pidfile names a non-zombie process with the expected name. PID 1
# here reaps daemonised children late, so `kill -0` alone reports dead daemons as alive.
alive_pid() {  # $1 pidfile, $2 comm -> prints the pid when alive
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $state != Z* && $state == *" $2" ]] || return 1
  echo "$pid"
}
wait_gone() {  # $1 pidfile, $2 comm, $3 pid: TERM, then KILL after 10 s
  local _
  kill -TERM "$3" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" >/dev/null || return 0; sleep 0.1; done
  log "$2 (pid $3) ignored SIGTERM; sending SIGKILL"
  kill -KILL "$3" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" >/dev/null || return 0; sleep 0.1; done
  die "$2 (pid $3) does not die"
}

# --- one-time preparation -------------------------------------------------------------------

ensure_packages() {
  if [[ -n $R ]]; then
    [[ -x $R/usr/sbin/libvirtd && -x $R/usr/sbin/sshd ]] || die "no generation tree $R: run scripts/generations.sh up $TARGET first"
    mountpoint -q "$R/proc" || die "$R is not mounted: run scripts/generations.sh up $TARGET first"
    command -v ss >/dev/null || "$ROOT/scripts/ensure-apt.sh" iproute2
    return 0
  fi
  # The system sshd must never start: policy-rc.d may be absent on other machines, and Debian's
  # init script and unit both honour this file.
  [[ -e /etc/ssh/sshd_not_to_be_run ]] || { mkdir -p /etc/ssh; echo "$MARKER" > /etc/ssh/sshd_not_to_be_run; }
  "$ROOT/scripts/ensure-apt.sh" "${PKGS[@]}"
}

ensure_key() { ensure_ssh_key "$KEY" virtfleet-fleet; }

# write_if_changed and sshd_config_common (shared with the other test fleet's script)
# shellcheck source=scripts/_hostlib.sh
. "$ROOT/scripts/_hostlib.sh"

# Prints "restart" when the session libvirtd must be restarted to read a changed qemu.conf.
ensure_host() {
  local n=$1 u h d hh own
  u=$(user_of "$n"); h=$(home_of "$n"); d=$(hdir "$n"); hh=$(hhome "$n")
  if ! user_exists "$n"; then
    in_host useradd -m -s /bin/bash -c "virtfleet test hypervisor hv$n" "$u" >&2
    log "created user $u${R:+ in $R}"
  fi
  own=$(ids_of "$n")   # numeric: on a generation the user exists only in the tree's passwd
  # '*' instead of useradd's '!': with UsePAM no, sshd refuses accounts whose password is locked.
  [[ $(awk -F: -v u="$u" '$1 == u { print $2 }' "$R/etc/shadow") == '*' ]] || in_host usermod -p '*' "$u"
  install -d -o "${own%:*}" -g "${own#*:}" -m 0700 "$hh/.config" "$hh/.config/libvirt" "$hh/.cache" "$hh/images"
  # Each host gets its own VNC autoport range so guests of different hosts never race for a port.
  local lo=$((VNC_BASE + 20 * (n - 1)))
  if printf '%s\nremote_display_port_min = %d\nremote_display_port_max = %d\n' "$MARKER" "$lo" $((lo + 19)) |
      write_if_changed "$hh/.config/libvirt/qemu.conf" 0644 "$own"; then
    echo restart
  fi
  install -d -m 0755 "$R$STATE" "$R$d"
  [[ -s $R$d/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "hv$n" -f "$R$d/ssh_host_ed25519_key"
  write_if_changed "$R$d/authorized_keys" 0644 root:root < "$KEY.pub" || true
  write_if_changed "$R$d/sshd_config" 0644 root:root <<EOF || true
$MARKER (host hv$n). Started as: /usr/sbin/sshd -f $d/sshd_config -E $d/sshd.log
Port $(port_of "$n")
ListenAddress 127.0.0.1
AddressFamily inet
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
AllowUsers $u
PermitRootLogin no
$(sshd_config_common)
EOF
}

# --- session libvirtd -------------------------------------------------------------------------

libvirtd_pidfile() { echo "$(hhome "$1")/.cache/libvirt/libvirtd.pid"; }
libvirtd_alive() { alive_pid "$(libvirtd_pidfile "$1")" libvirtd; }
libvirt_answers() { vsh "$1" version >/dev/null 2>&1; }

wait_libvirt() {
  local n=$1 _
  for _ in $(seq 100); do libvirt_answers "$n" && return 0; sleep 0.1; done
  die "hv$n: qemu:///session of $(user_of "$n") does not answer; $(hhome "$n")/.cache/libvirt/libvirtd.log:
$(tail -n 15 "$(hhome "$n")/.cache/libvirt/libvirtd.log" 2>/dev/null)"
}

start_libvirtd() {
  local n=$1 _
  libvirtd_alive "$n" >/dev/null && return 0
  as_user "$n" libvirtd --daemon || die "hv$n: libvirtd --daemon failed (exit $?)"
  for _ in $(seq 50); do libvirtd_alive "$n" >/dev/null && break; sleep 0.1; done
  wait_libvirt "$n"
}

stop_libvirtd() {
  local n=$1 pid
  pid=$(libvirtd_alive "$n") || return 0
  wait_gone "$(libvirtd_pidfile "$n")" libvirtd "$pid"
}

restart_libvirtd() { stop_libvirtd "$1"; start_libvirtd "$1"; }

# --- sshd -------------------------------------------------------------------------------------

sshd_alive() { alive_pid "$(hhdir "$1")/sshd.pid" sshd; }

ssh_answers() {  # the check of the brief, with autostart off so only the real daemon counts
  ssh "${SSH_OPTS[@]}" -p "$(port_of "$1")" "$(user_of "$1")@127.0.0.1" \
    LIBVIRT_AUTOSTART=0 virsh -c qemu:///session list --all >/dev/null 2>&1
}

wait_ssh() {
  local n=$1 _
  for _ in $(seq 50); do ssh_answers "$n" && return 0; sleep 0.2; done
  die "hv$n: ssh -p $(port_of "$n") $(user_of "$n")@127.0.0.1 virsh -c qemu:///session list --all fails:
$(ssh "${SSH_OPTS[@]}" -p "$(port_of "$n")" "$(user_of "$n")@127.0.0.1" virsh -c qemu:///session list --all 2>&1 | tail -5)
$(tail -n 10 "$(hhdir "$n")/sshd.log" 2>/dev/null)"
}

start_sshd() {  # the host's own sshd (a generation's: inside its tree)
  local n=$1 d _
  d=$(hdir "$n")
  sshd_alive "$n" >/dev/null && return 0
  mkdir -p "$R/run/sshd" && chmod 0755 "$R/run/sshd"   # privilege separation directory
  in_host /usr/sbin/sshd -t -f "$d/sshd_config" || die "hv$n: invalid $R$d/sshd_config"
  in_host /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log" || die "hv$n: sshd failed (exit $?); see $R$d/sshd.log"
  for _ in $(seq 50); do sshd_alive "$n" >/dev/null && return 0; sleep 0.1; done
  die "hv$n: sshd did not stay up; $R$d/sshd.log:
$(tail -n 10 "$R$d/sshd.log" 2>/dev/null)"
}

# Stopping only the listener leaves established connections (Ansible's ControlPersist masters)
# working, so the sessions on this host's port go too: every process holding an established
# socket on 127.0.0.1:PORT on the server side is one of this sshd's session processes.
stop_sshd() {
  local n=$1 port pid pids
  port=$(port_of "$n")
  if pid=$(sshd_alive "$n"); then wait_gone "$(hhdir "$n")/sshd.pid" sshd "$pid"; fi
  pids=$(ss -Htnp state established "( sport = :$port )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
  # OpenSSH 9.8 and later (Debian 13's 10.0) run each session as sshd-session, older ones as sshd.
  for pid in $pids; do
    case $(ps -o comm= -p "$pid" 2>/dev/null) in
      sshd|sshd-session) kill -TERM "$pid" 2>/dev/null || true ;;
    esac
  done
}

# --- domains ----------------------------------------------------------------------------------

destroy_all() {  # every running domain of host N, in parallel (a QEMU process takes ~1.6 s to die)
  local n=$1 name pids=()
  for name in $(vsh "$n" list --name --state-running --state-paused --state-other 2>/dev/null); do
    vsh "$n" destroy "$name" >/dev/null & pids+=($!)
  done
  local p rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

render() {  # $1 n, $2 index, $3 name, $4 template -> XML on stdout
  local n=$1 i=$2 name=$3 dd; dd=$(printf '%02d' "$i")
  sed -e "s|@TYPE@|$DOMAIN_TYPE|g" -e "s|@NAME@|$name|g" -e "s|@HOST@|hv$n|g" \
      -e "s|@UUID@|5f1ee700-000$n-4000-8000-0000000000$dd|g" \
      -e "s|@MAC1@|52:54:00:0$n:$dd:01|g" -e "s|@MAC2@|52:54:00:0$n:$dd:02|g" \
      -e "s|@SERIAL@|$name|g" -e "s|@WWN@|0${n}0000$dd|g" -e "s|@VNCPASS@|pw-$n-$dd|g" \
      -e "s|@IMAGES@|$(home_of "$n")/images|g" "$FIXTURES/$4.xml"
}

seed_host() {
  local n=$1 u h hh own t0 host name tmpl how state i=0 legacy=0 f start=()
  u=$(user_of "$n"); h=$(home_of "$n"); hh=$(hhome "$n"); own=$(ids_of "$n"); t0=$(now)
  start_libvirtd "$n"
  destroy_all "$n"
  for name in $(vsh "$n" list --all --name); do
    vsh "$n" undefine --managed-save --snapshots-metadata --checkpoints-metadata "$name" >/dev/null
  done
  rm -rf "$hh/images" "$hh/virtfleet-backups" "$hh/.cache/virtfleet-seed"
  find "$hh/.config/libvirt/qemu" -maxdepth 1 -name '*.xml' -delete 2>/dev/null || true
  install -d -o "${own%:*}" -g "${own#*:}" -m 0700 "$hh/images" "$hh/.cache/virtfleet-seed"
  while IFS=$'\t' read -r host name tmpl how state; do
    [[ $host == "hv$n" ]] || continue
    i=$((i + 1))
    f=$h/.cache/virtfleet-seed/$name.xml      # the host's path ($R$f from here)
    render "$n" "$i" "$name" "$tmpl" > "$R$f"
    chown "$own" "$R$f"; chmod 0600 "$R$f"
    local img
    while read -r img; do
      case $img in
        *.qcow2) as_user "$n" qemu-img create -q -f qcow2 "$img" 64M ;;
        *) as_user "$n" truncate -s 64M "$img" ;;
      esac
    done < <(grep -o "<source file='[^']*'" "$R$f" | cut -d"'" -f2)
    case $how in
      define) vsh "$n" define "$f" >/dev/null ;;
      file)
        # Define a valid twin (io='threads') so libvirt fills in addresses and writes its own
        # config file, then put io='native' back into that file: what an upgraded host carries.
        ! grep -q "<driver[^>]*io='threads'" "$R$f" || die "$tmpl.xml: a how=file template must not use io='threads'"
        sed "s/io='native'/io='threads'/g" "$R$f" > "$R$f.twin"
        chown "$own" "$R$f.twin"
        vsh "$n" define "$f.twin" >/dev/null
        as_user "$n" sed -i "s/io='threads'/io='native'/g" "$h/.config/libvirt/qemu/$name.xml"
        legacy=1 ;;
      *) die "$MANIFEST: unknown 'how' $how for $name" ;;
    esac
    [[ $state == running ]] && start+=("$name")
  done < <(grep -v '^#' "$MANIFEST")
  # libvirtd reads ~/.config/libvirt/qemu/*.xml only at start; the API refuses these definitions.
  ((legacy)) && restart_libvirtd "$n"
  for name in "${start[@]}"; do vsh "$n" start "$name" >/dev/null; done
  log "hv$n seeded in $(since "$t0"): $(vsh "$n" list --all | awk '{s = $3; for (i = 4; i <= NF; i++) s = s " " $i; printf "%s(%s) ", $2, s}')"
}

# --- commands ---------------------------------------------------------------------------------

host_up() {  # $1 n, $2 "restart" when qemu.conf changed
  local n=$1 t0; t0=$(now)
  if [[ ${2:-} == restart ]] && libvirtd_alive "$n" >/dev/null; then
    log "hv$n: qemu.conf changed, restarting libvirtd"; stop_libvirtd "$n"
  fi
  start_libvirtd "$n"
  start_sshd "$n"
  wait_ssh "$n"
  [[ -n ${FLEET_VERBOSE:-} ]] && log "hv$n: up in $(since "$t0")"
  return 0
}

# The inventory of a generation's three hosts: tests/fleet/inventory.yml with this target's ports.
write_inventory() {
  [[ -n $R ]] || return 0
  mkdir -p "$(dirname "$INVENTORY")"
  {
    echo "$MARKER (VIRTFLEET_TARGET=$TARGET): tests/fleet/inventory.yml for the hosts inside $R"
    echo "all:"
    echo "  children:"
    echo "    hypervisors:"
    echo "      hosts:"
    for n in "${HOSTS[@]}"; do
      printf '        hv%s:\n          ansible_port: %s\n          ansible_user: %s\n          virtfleet_backup_dir: %s/virtfleet-backups\n' \
        "$n" "$(port_of "$n")" "$(user_of "$n")" "$(home_of "$n")"
    done
    echo "      vars:"
    echo "        ansible_connection: ssh"
    echo "        ansible_host: 127.0.0.1"
    echo "        ansible_ssh_private_key_file: $KEY"
    echo "        ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    echo "        ansible_python_interpreter: /usr/bin/python3"
    echo "        virtfleet_uri: qemu:///session"
    echo "        virtfleet_generation: $TARGET"
  } | write_if_changed "$INVENTORY" 0644 || true
}

cmd_up() {
  local t0 t n pids=() rc=0 restart=()
  t0=$(now)
  ensure_packages
  ensure_key
  write_inventory
  t=$(now)
  # users serially (useradd locks /etc/passwd), daemons of the hosts in parallel
  for n in "${HOSTS[@]}"; do restart[n]=$(ensure_host "$n"); done
  [[ -n ${FLEET_VERBOSE:-} ]] && log "users and configs in $(since "$t")"
  for n in "${HOSTS[@]}"; do host_up "$n" "${restart[n]}" & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  ((rc == 0)) || die "not every host came up (see above)"
  log "up in $(since "$t0") (hosts $(since "$t")): $(for n in "${HOSTS[@]}"; do printf 'hv%s=vfhv%s@127.0.0.1:%s ' "$n" "$n" "$(port_of "$n")"; done)"
}

cmd_seed() {
  local t0 n pids=() rc=0
  t0=$(now)
  [[ -r $MANIFEST ]] || die "$MANIFEST is missing"
  for n in "${HOSTS[@]}"; do
    user_exists "$n" || die "hv$n does not exist: run scripts/fleet.sh up first"
  done
  for n in "${HOSTS[@]}"; do seed_host "$n" & pids+=($!); done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  ((rc == 0)) || die "seeding failed on at least one host (see above)"
  log "seed done in $(since "$t0")"
}

host_down() {
  local n=$1 pid
  stop_sshd "$n"
  if libvirtd_alive "$n" >/dev/null; then destroy_all "$n" || true; fi
  stop_libvirtd "$n"
  # virtlogd of the session is spawned by libvirtd on the first domain start
  if pid=$(alive_pid "$(hhome "$n")/.cache/libvirt/virtlogd.pid" virtlogd); then
    wait_gone "$(hhome "$n")/.cache/libvirt/virtlogd.pid" virtlogd "$pid"
  fi
  log "hv$n down"
}

cmd_down() {
  local n pids=() rc=0
  for n in "${HOSTS[@]}"; do
    user_exists "$n" || continue
    host_down "$n" & pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  return $rc
}

cmd_purge() {
  local n
  cmd_down
  for n in "${HOSTS[@]}"; do
    if user_exists "$n"; then in_host userdel -r "$(user_of "$n")" 2>/dev/null || true; fi
  done
  if [[ -n $R ]]; then   # the key stays: the lab's fleet uses it too
    rm -rf "${R:?}$STATE" "$(dirname "$INVENTORY")"
    log "purged users, $R$STATE and $(dirname "$INVENTORY")"
    return
  fi
  rm -rf "$STATE" "$KEY_DIR"
  log "purged users, $STATE and $KEY_DIR"
}

cmd_status() {
  local n rc=0 t pid line
  for n in "${HOSTS[@]}"; do
    line="hv$n ($(user_of "$n")@127.0.0.1:$(port_of "$n")):"
    if ! user_exists "$n"; then log "$line no such user"; rc=1; continue; fi
    if pid=$(libvirtd_alive "$n"); then line+=" libvirtd $pid"; else line+=" libvirtd DOWN"; rc=1; fi
    if pid=$(sshd_alive "$n"); then line+=", sshd $pid"; else line+=", sshd DOWN"; rc=1; fi
    t=$(now)
    if ssh_answers "$n"; then line+=", ssh+virsh $(since "$t")"; else line+=", ssh+virsh FAILS"; rc=1; fi
    if libvirt_answers "$n"; then
      line+=", domains: $(vsh "$n" list --all | awk '{s = $3; for (i = 4; i <= NF; i++) s = s " " $i; printf "%s(%s) ", $2, s}')"
    fi
    log "$line"
  done
  return $rc
}

case ${1:-} in
  -h|--help|help|'') sed -n '2,36p' "$0"; exit 0 ;;
  status) cmd_status; exit ;;
  inventory) echo "$INVENTORY"; exit 0 ;;
  up|seed|down|purge|stop-host|start-host|restart-libvirt) ;;
  *) die "unknown subcommand '$1' (up | seed | status | down | purge | stop-host N | start-host N | restart-libvirt N | inventory)" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (users, packages, one sshd per host)"
exec 9>"$LOCK_FILE"
flock 9
case $1 in
  up) cmd_up ;;
  seed) cmd_seed ;;
  down) cmd_down ;;
  purge) cmd_purge ;;
  stop-host) check_n "${2:-}"; stop_sshd "$2"; log "hv$2: sshd stopped (127.0.0.1:$(port_of "$2") refuses)" ;;
  start-host) check_n "${2:-}"; start_sshd "$2"; wait_ssh "$2"; log "hv$2: sshd up and answering" ;;
  restart-libvirt)
    check_n "${2:-}"; t0=$(now); restart_libvirtd "$2"
    log "hv$2: session libvirtd restarted (pid $(libvirtd_alive "$2")) in $(since "$t0")" ;;
esac
