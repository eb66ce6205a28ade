#!/usr/bin/env bash
# Real libvirt/QEMU lab for the integration tests, on Debian 12, as root, WITHOUT systemd.
#
#   scripts/lab.sh [up]     install what is missing, start virtlogd + libvirtd if they are not
#                           running, wait until qemu:///system answers, write the env file.
#                           Prints the URI on stdout; progress and errors go to stderr.
#   scripts/lab.sh restart  restart libvirtd only and wait until it answers (libvirtd reads
#                           /etc/libvirt/qemu/*.xml only at start: tests use this after dropping
#                           a domain XML there that the API would refuse to define).
#   scripts/lab.sh status   say whether the daemons run and answer; exit 1 if not.
#
# Env file (source it, or `set -a; . FILE; set +a`):  /run/virtfleet-lab.env
#   LIBVIRT_URI=qemu:///system
#   LIBVIRT_DOMAIN_TYPE=qemu|kvm
# Idempotent: a rerun with everything up takes well under a second.
set -euo pipefail

URI=qemu:///system
ENV_FILE=/run/virtfleet-lab.env
LOCK_FILE=/run/virtfleet-lab.lock
LOG_DIR=/var/log/libvirt
QEMU_CONF=/etc/libvirt/qemu.conf
MARKER='# managed by virtfleet scripts/lab.sh'
# libvirt-daemon-system is deliberately absent: it brings polkit, iptables and systemd units,
# none of which work (or are needed) here. Debian 12 ships only the monolithic libvirtd.
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
      libvirt-dev pkg-config)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "[lab] $*" >&2; }
die() { echo "[lab] ERROR: $*" >&2; exit 1; }

# A daemon is alive when its pidfile names a process with the expected name that is not a
# zombie. PID 1 on these machines reaps dead daemons late, so `kill -0 PID` alone reports a
# killed libvirtd as alive for a while.
pid_of() { cat "/run/$1.pid" 2>/dev/null || true; }
alive() {
  local pid state
  pid=$(pid_of "$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $state != Z* && $state == *" $1" ]]
}

answers() { virsh -q -c "$URI" version >/dev/null 2>&1; }

wait_answer() {  # up to ~10 s; libvirtd normally answers within 0.2 s
  local _
  for _ in $(seq 1 100); do answers && return 0; sleep 0.1; done
  answers || die "libvirtd is not answering on $URI; see $LOG_DIR/libvirtd.log (tail below)
$(tail -n 15 "$LOG_DIR/libvirtd.log" 2>/dev/null || echo '  (no log file)')"
}

start_daemon() {  # $1 = virtlogd | libvirtd
  alive "$1" && return 0
  log "starting $1"
  # 9>&-: the daemons must not inherit the lab lock, or they hold it forever.
  "$1" -d 9>&- || die "$1 -d failed (exit $?); see $LOG_DIR/$1.log
$(tail -n 15 "$LOG_DIR/$1.log" 2>/dev/null || echo '  (no log file)')"
  local _
  for _ in $(seq 1 50); do alive "$1" && return 0; sleep 0.1; done
  die "$1 did not stay up; see $LOG_DIR/$1.log
$(tail -n 15 "$LOG_DIR/$1.log" 2>/dev/null || echo '  (no log file)')"
}

stop_daemon() {  # SIGTERM, then SIGKILL after 10 s; returns once the process is gone or a zombie
  local pid _
  alive "$1" || return 0
  pid=$(pid_of "$1")
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$1" || return 0; sleep 0.1; done
  log "$1 ignored SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$1" || return 0; sleep 0.1; done
  die "$1 (pid $pid) does not die"
}

prepare_host() {
  "$HERE/ensure-apt.sh" "${PKGS[@]}"
  # What libvirt-daemon-system would have done. The QEMU driver resolves its compiled-in user
  # 'libvirt-qemu' before qemu.conf is read, so the user must exist even though qemu.conf says
  # root ("Failed to parse user 'libvirt-qemu'" / "Initialization of QEMU state driver failed").
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  # Without the log dir both daemons exit 1 ("failed to open /var/log/libvirt/virtlogd.log").
  mkdir -p "$LOG_DIR/qemu" /var/lib/libvirt/images /etc/libvirt/qemu
  # root:root lets QEMU read images anywhere without relabelling; never overwrite an admin's file.
  if [[ ! -e $QEMU_CONF ]] || grep -qxF "$MARKER" "$QEMU_CONF"; then
    printf '%s\nuser = "root"\ngroup = "root"\n' "$MARKER" > "$QEMU_CONF.tmp"
    mv "$QEMU_CONF.tmp" "$QEMU_CONF"
  else
    log "leaving $QEMU_CONF alone (not managed by this script)"
  fi
}

domain_type() {
  # /dev/kvm can exist (nested kvm_pvm) while a Linux guest never leaves the kernel
  # decompressor, so KVM is used only when the CPU really advertises vmx/svm.
  if grep -qwE 'vmx|svm' /proc/cpuinfo && [[ -w /dev/kvm ]]; then echo kvm; else echo qemu; fi
}

write_env() {
  local type=$1
  printf 'LIBVIRT_URI=%s\nLIBVIRT_DOMAIN_TYPE=%s\n' "$URI" "$type" > "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

announce() {
  local type=$1 why
  if [[ $type == kvm ]]; then why='KVM: CPU has vmx/svm and /dev/kvm is writable'
  else why='TCG: no vmx/svm in /proc/cpuinfo or /dev/kvm not writable'; fi
  log "libvirtd $(pid_of libvirtd), virtlogd $(pid_of virtlogd): ready."
  log "use LIBVIRT_URI=$URI with <domain type='$type'> ($why); env: $ENV_FILE"
}

cmd_up() {
  prepare_host
  start_daemon virtlogd
  start_daemon libvirtd
  wait_answer
  local type; type=$(domain_type)
  write_env "$type"
  announce "$type"
  echo "$URI"
}

cmd_restart() {
  command -v libvirtd >/dev/null || die "libvirtd is not installed; run scripts/lab.sh first"
  mkdir -p "$LOG_DIR/qemu"
  start_daemon virtlogd
  stop_daemon libvirtd
  start_daemon libvirtd
  wait_answer
  log "libvirtd restarted (pid $(pid_of libvirtd)); $URI answers"
}

cmd_status() {
  local rc=0 d
  for d in virtlogd libvirtd; do
    if alive "$d"; then log "$d: running (pid $(pid_of "$d"))"; else log "$d: not running"; rc=1; fi
  done
  if answers; then log "$URI: answers ($(virsh -q -c "$URI" version 2>/dev/null | tr '\n' ' '))"
  else log "$URI: not answering; see $LOG_DIR/libvirtd.log"; rc=1; fi
  [[ -r $ENV_FILE ]] && log "$ENV_FILE: $(tr '\n' ' ' < "$ENV_FILE")"
  return "$rc"
}

case ${1:-up} in
  up|start|restart) ;;
  status) cmd_status; exit ;;
  -h|--help|help) sed -n '2,15p' "$0"; exit 0 ;;
  *) die "unknown subcommand '$1' (use: up | restart | status)" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root: it installs packages and runs the system libvirtd"
# One lab.sh at a time: parallel test workers may restart libvirtd concurrently.
exec 9>"$LOCK_FILE"
flock 9
case ${1:-up} in
  up|start) cmd_up ;;
  restart) cmd_restart ;;
esac
