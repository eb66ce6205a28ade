# shellcheck shell=bash
# Sourced by scripts/fleet.sh and scripts/generations.sh (not run on its own): what both test
# fleets write the same way.

# write_if_changed PATH MODE [OWNER]: content on stdin; replaces PATH only when the content differs
# (atomically, via a temporary file beside it). Returns 0 when it changed, 1 when it was the same.
write_if_changed() {
  local tmp; tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  chmod "$2" "$tmp"
  if [[ -n ${3:-} ]]; then chown "$3" "$tmp"; fi
  mv "$tmp" "$1"
  return 0
}

# ensure_ssh_key KEY COMMENT: the fleet's ed25519 client key pair (KEY, KEY.pub), made when either
# half is missing; KEY stays 0600. Needs log() from the caller.
ensure_ssh_key() {
  mkdir -p "$(dirname "$1")"
  if [[ ! -s $1 || ! -s $1.pub ]]; then
    rm -f "$1" "$1.pub"
    ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
    log "generated $1"
  fi
  chmod 600 "$1"
}

# sshd_config_common: the part of a test host's sshd_config that every host shares - key logins
# only, no PAM/DNS/X11/motd, many parallel Ansible connections, internal sftp.
sshd_config_common() {
  cat <<'EOF_SSHD'
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
EOF_SSHD
}
