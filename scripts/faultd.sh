#!/usr/bin/env bash
# The FAULT daemon: one session libvirtd that the fault tests (tests/faults) may kill and restart
# at will, so that the shared qemu:///system daemon other tests use is never touched.
#
# It is the Unix user vffault running its own SESSION libvirtd (qemu:///session, TCG guests; state
# in ~vffault/.config/libvirt and ~vffault/.cache/libvirt). No XDG_RUNTIME_DIR is set, so its
# socket is ~vffault/.cache/libvirt/libvirt-sock. Tests run as root and connect to that socket
# directly (root passes the socket's 0700 mode; libvirt's remote driver sends "qemu:///session"):
#
#   qemu+unix:///session?socket=/home/vffault/.cache/libvirt/libvirt-sock
#
#   scripts/faultd.sh up        create the user, its dirs and qemu.conf when missing, start libvirtd
#                               when it does not run, wait until it answers. Idempotent (warm: ~0.1 s).
#   scripts/faultd.sh down      destroy running vff- domains, stop libvirtd and the session virtlogd
#                               (keeps the user and its images: the next `up` is warm)
#   scripts/faultd.sh kill      SIGKILL libvirtd and wait until it is really gone (a zombie counts as
#                               gone). QEMU guests survive; a restarted daemon reconnects to them.
#   scripts/faultd.sh restart   stop libvirtd if it runs (SIGTERM), start it again, wait until it
#                               answers. After `kill` this is just the start.
#   scripts/faultd.sh start     start libvirtd if it does not run and wait until it answers
#   scripts/faultd.sh status    user, daemon pid, whether it answers, domains; exit 1 if not up
#   scripts/faultd.sh uri       print the URI above on stdout (nothing else; needs no root)
#
#   scripts/faultd.sh module-uri  the same daemon's URI as a module on that host sees it
#
# VIRTFLEET_TARGET=bullseye|bookworm|trixie (tests/_target.py): the same, but the user, its home and
# its libvirtd live inside that generation's tree (/var/lib/virtfleet-gen/<name>, scripts/generations.sh
# must have built it): the daemon is that release's libvirtd, the socket is
# <tree>/home/vffault/.cache/libvirt/libvirt-sock seen from here (`uri`), /home/vffault/... inside
# the tree (`module-uri`). Each target has its own lock, so targets never wait for each other.
#
# Needs root (except uri, module-uri). Progress on stderr. Leaves qemu:///system and the fleet (vfhvN) alone.
set -euo pipefail

TARGET=${VIRTFLEET_TARGET:-lab}
case $TARGET in
  lab) R= ;;
  bullseye|bookworm|trixie) R=${VIRTFLEET_GEN_STATE:-/var/lib/virtfleet-gen}/$TARGET ;;
  *) echo "[faultd] ERROR: VIRTFLEET_TARGET=$TARGET is not a target (lab bullseye bookworm trixie)" >&2; exit 2 ;;
esac
USER_NAME=vffault
HOME_IN=/home/$USER_NAME         # as the daemon sees it
HOME_DIR=$R$HOME_IN              # as this script sees it
CACHE=$HOME_DIR/.cache/libvirt
SOCK=$CACHE/libvirt-sock
PIDFILE=$CACHE/libvirtd.pid
VLPIDFILE=$CACHE/virtlogd.pid
URI="qemu+unix:///session?socket=$SOCK"
MODULE_URI="qemu+unix:///session?socket=$HOME_IN/.cache/libvirt/libvirt-sock"
IMAGES=$HOME_DIR/images          # where the fault tests put disk images and console logs (lab)
PREFIX=vff-                      # domains of the fault tests
LOCK_FILE=/run/virtfleet-faultd${R:+-$TARGET}.lock
MARKER='# managed by virtfleet scripts/faultd.sh'
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "[faultd] $*" >&2; }
die() { echo "[faultd] ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

# As the user, with the environment an SSH login would give (no XDG_RUNTIME_DIR). LIBVIRT_AUTOSTART=0:
# a client must never spawn a replacement daemon behind our back. 9>&-: daemons must not inherit the lock.
# On a generation target: inside its tree (chroot), with that release's runuser and binaries.
as_user() {
  if [[ -n $R ]]; then
    env -i PATH=$CHROOT_PATH chroot "$R" env -C "$HOME_IN" runuser -u "$USER_NAME" -- env -i HOME="$HOME_IN" USER="$USER_NAME" LOGNAME="$USER_NAME" \
      SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LIBVIRT_AUTOSTART=0 "$@" 9>&-
    return
  fi
  (cd "$HOME_DIR" && runuser -u "$USER_NAME" -- env -i HOME="$HOME_DIR" USER="$USER_NAME" LOGNAME="$USER_NAME" \
    SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LIBVIRT_AUTOSTART=0 "$@" 9>&-)
}
# Commands as root on the target host (inside its tree on a generation).
in_host() {
  if [[ -n $R ]]; then env -i PATH=$CHROOT_PATH chroot "$R" "$@" 9>&-; else "$@" 9>&-; fi
}
user_id() { awk -F: -v u="$USER_NAME" '$1 == u { print $3 ":" $4 }' "$R/etc/passwd"; }
vsh() { LIBVIRT_AUTOSTART=0 virsh -q -c "$URI" "$@"; }   # as root, through the socket: what tests do

# Alive = the pidfile names a non-zombie process called $2. PID 1 here reaps daemonised children
# late, so `kill -0` alone reports a SIGKILLed libvirtd as alive for a while.
alive_pid() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $state != Z* && $state == *" $2" ]] || return 1
  echo "$pid"
}
libvirtd_alive() { alive_pid "$PIDFILE" libvirtd; }
answers() { vsh version >/dev/null 2>&1; }

wait_gone() {  # $1 pidfile, $2 comm, $3 pid, $4 first signal: then KILL after 10 s
  local _
  kill "-$4" "$3" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" >/dev/null || return 0; sleep 0.1; done
  log "$2 (pid $3) still alive 10 s after SIG$4; sending SIGKILL"
  kill -KILL "$3" 2>/dev/null || true
  for _ in $(seq 100); do alive_pid "$1" "$2" >/dev/null || return 0; sleep 0.1; done
  die "$2 (pid $3) does not die"
}

wait_answer() {
  local _
  for _ in $(seq 100); do answers && return 0; sleep 0.1; done
  die "$URI does not answer; $CACHE/libvirtd.log:
$(tail -n 15 "$CACHE/libvirtd.log" 2>/dev/null)"
}

ensure_user() {
  if [[ -z $(user_id) ]]; then
    in_host useradd -m -s /bin/bash -c "virtfleet fault-test hypervisor" "$USER_NAME"
    log "created user $USER_NAME${R:+ in $R}"
  fi
  local own; own=$(user_id)   # numeric: a generation's vffault has its own uid in its own passwd
  install -d -o "${own%:*}" -g "${own#*:}" -m 0700 "$HOME_DIR/.config" "$HOME_DIR/.config/libvirt" \
    "$HOME_DIR/.cache" "$CACHE"
  # 0711: QEMU (running as vffault) reads images root puts here; root reaches them anyway.
  install -d -o "${own%:*}" -g "${own#*:}" -m 0711 "$HOME_DIR" "$IMAGES"
  local conf=$HOME_DIR/.config/libvirt/qemu.conf tmp lo
  tmp=$(mktemp)
  # A VNC range of its own (the fleet's hosts use 5950-6009, the generations 6100-6159), should
  # a test ever add graphics; each target's fault daemon its own 20 ports.
  case $TARGET in lab) lo=6050 ;; bullseye) lo=6170 ;; bookworm) lo=6190 ;; trixie) lo=6210 ;; esac
  printf '%s\nremote_display_port_min = %d\nremote_display_port_max = %d\n' "$MARKER" "$lo" $((lo + 19)) > "$tmp"
  if [[ -f $conf ]] && cmp -s "$tmp" "$conf"; then rm -f "$tmp"; return 1; fi
  chmod 0644 "$tmp"; chown "$own" "$tmp"; mv "$tmp" "$conf"
  return 0   # changed: a running daemon must restart to read it
}

start_libvirtd() {
  local t0 _
  if libvirtd_alive >/dev/null; then wait_answer; return 0; fi
  t0=$(now)
  # A SIGKILLed daemon leaves its pidfile and socket behind; libvirtd copes with both (0.2 s).
  as_user libvirtd --daemon || die "libvirtd --daemon as $USER_NAME failed (exit $?); see $CACHE/libvirtd.log"
  for _ in $(seq 50); do libvirtd_alive >/dev/null && break; sleep 0.1; done
  wait_answer
  log "libvirtd of $USER_NAME up (pid $(libvirtd_alive)) in $(since "$t0")"
}

stop_libvirtd() {  # $1 signal
  local pid
  pid=$(libvirtd_alive) || return 0
  wait_gone "$PIDFILE" libvirtd "$pid" "$1"
  log "libvirtd (pid $pid) gone after SIG$1"
}

destroy_ours() {  # running vff- domains, in parallel (a QEMU process takes ~1.6 s to die)
  local name pids=() p
  for name in $(vsh list --name --state-running --state-paused --state-other 2>/dev/null); do
    [[ $name == "$PREFIX"* ]] || continue
    vsh destroy "$name" >/dev/null 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
}

cmd_up() {
  local t0 changed=0
  t0=$(now)
  if [[ -n $R ]]; then
    [[ -x $R/usr/sbin/libvirtd ]] || die "no generation tree $R: run scripts/generations.sh up $TARGET first"
    mountpoint -q "$R/proc" || die "$R is not mounted: run scripts/generations.sh up $TARGET first"
  else
    [[ -x $(command -v libvirtd) ]] || "$ROOT/scripts/ensure-apt.sh" "${PKGS[@]}"
  fi
  ensure_user && changed=1
  if ((changed)) && libvirtd_alive >/dev/null; then log "qemu.conf changed: restarting"; stop_libvirtd TERM; fi
  start_libvirtd
  log "up in $(since "$t0")${R:+ ($TARGET)}: $URI"
}

cmd_down() {
  local pid
  if libvirtd_alive >/dev/null && answers; then destroy_ours; fi
  stop_libvirtd TERM
  if pid=$(alive_pid "$VLPIDFILE" virtlogd); then wait_gone "$VLPIDFILE" virtlogd "$pid" TERM; fi
  log "down"
}

cmd_status() {
  local line="$USER_NAME:" pid rc=0
  if [[ -z $(user_id) ]]; then log "$line no such user${R:+ in $R}"; return 1; fi
  if pid=$(libvirtd_alive); then line+=" libvirtd $pid"; else line+=" libvirtd DOWN"; rc=1; fi
  if answers; then
    line+=", answers on $URI, domains: $(vsh list --all | awk '{printf "%s(%s) ", $2, $3}')"
  else
    line+=", does NOT answer on $URI"; rc=1
  fi
  log "$line"
  return $rc
}

case ${1:-} in
  -h|--help|help|'') sed -n '2,34p' "$0"; exit 0 ;;
  uri) echo "$URI"; exit 0 ;;
  module-uri) echo "$MODULE_URI"; exit 0 ;;
  up|down|kill|restart|start|status) ;;
  *) die "unknown subcommand '$1' (up | down | kill | restart | start | status | uri | module-uri)" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (a dedicated user and its daemon)"
exec 9>"$LOCK_FILE"
flock 9
case $1 in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start) [[ -n $(user_id) ]] || die "no user $USER_NAME: run scripts/faultd.sh up first"; start_libvirtd ;;
  kill)
    if pid=$(libvirtd_alive); then
      kill -KILL "$pid"; wait_gone "$PIDFILE" libvirtd "$pid" KILL; log "libvirtd (pid $pid) SIGKILLed"
    else
      log "libvirtd is not running: nothing to kill"
    fi ;;
  restart)
    [[ -n $(user_id) ]] || die "no user $USER_NAME: run scripts/faultd.sh up first"
    t0=$(now); stop_libvirtd TERM; start_libvirtd; log "restarted in $(since "$t0")" ;;
esac
