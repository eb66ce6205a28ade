#!/usr/bin/env bash
# Build the tiny Linux guest of the detach integration tests: a guest that really releases
# hot-unplugged PCI devices (firmware alone never does), so DEVICE_REMOVED actually arrives.
#
#   scripts/build-guest.sh [OUT_DIR]     default: /var/lib/libvirt/images/virtfleet-guest
#
# Produces OUT_DIR/vmlinuz and OUT_DIR/initrd.img (plus OUT_DIR/BUILD-INFO) from Debian packages:
#   - kernel:   /boot/vmlinuz-* of the linux-image package linux-image-amd64 points to. The .deb is
#               downloaded and extracted, never installed. Hot-unplug (acpiphp, pciehp) is built
#               into Debian's kernel; only the virtio modules go into the initramfs.
#   - userland: busybox from busybox-static, as a newc cpio initramfs.
# The initramfs' /init loads the virtio modules, prints "VIRTFLEET-GUEST-READY" on the console
# and then one "VIRTFLEET-DEV t=<uptime> n=<count> blink=<count> disks=<dev>:<serial>,..." line
# whenever that changes, so the host can watch hot(un)plug in a <serial type='file'> log. blink
# counts PCIe ports whose power indicator blinks (native PCIe hotplug busy powering a slot up or
# down: QEMU refuses device_del meanwhile).
# Boot it with libvirt direct kernel boot (q35, <features><acpi/></features>, 128 MiB):
#   <kernel>OUT_DIR/vmlinuz</kernel><initrd>OUT_DIR/initrd.img</initrd>
#   <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
#
# Idempotent: when a guest of this script's FORMAT exists it prints OUT_DIR and exits (instant).
# Concurrent runs are serialised with a lock; a half-built guest is never taken for a built one.
# Needs apt (Debian 12) and write access to OUT_DIR; downloads ~70 MB once, keeps ~9.5 MB.
set -euo pipefail

OUT=$(realpath -m "${1:-/var/lib/libvirt/images/virtfleet-guest}")
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)

log() { echo "[build-guest] $*" >&2; }
die() { echo "[build-guest] ERROR: $*" >&2; exit 1; }
# Bump FORMAT when the initramfs changes: a guest built by an older version of this script is rebuilt.
FORMAT=5
built() { [[ -s $OUT/vmlinuz && -s $OUT/initrd.img ]] && grep -qx "format=$FORMAT" "$OUT/BUILD-INFO" 2>/dev/null; }

if built; then echo "$OUT"; exit 0; fi
for tool in apt-get apt-cache dpkg-deb gzip flock; do   # cpio: busybox's own, below
  command -v "$tool" >/dev/null || die "'$tool' is missing (Debian 12 expected)"
done
mkdir -p "$OUT"
exec 8>"$OUT/.build.lock"
flock 8
if built; then echo "$OUT"; exit 0; fi   # another run finished it while we waited

WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"   # apt-get download drops privileges to _apt unless told otherwise

# The metapackage linux-image-amd64 depends on the real image package (linux-image-6.1.0-NN-amd64).
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}
KPKG=$(kernel_package)
if [[ -z $KPKG ]] || ! apt-cache show busybox-static >/dev/null 2>&1; then
  log "apt lists lack linux-image-amd64 or busybox-static: apt-get update"
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  KPKG=$(kernel_package)
fi
[[ -n $KPKG ]] || die "cannot resolve the kernel package behind linux-image-amd64"
log "downloading $KPKG and busybox-static into $WORK"
(cd "$WORK" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG" busybox-static) ||
  die "apt-get download $KPKG busybox-static failed"

dpkg-deb -x "$WORK/${KPKG}"_*.deb "$WORK/kernel"
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/busybox"
VMLINUZ=$(find "$WORK/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)
[[ -n $VMLINUZ ]] || die "$KPKG has no /boot/vmlinuz-*"
BUSYBOX=$WORK/busybox/bin/busybox
[[ -x $BUSYBOX ]] || die "busybox-static has no /bin/busybox"

ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,dev,proc,sys,mods}
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
ln -s busybox "$ROOTFS/bin/sh"
for mod in "${MODULES[@]}"; do
  # Uncompressed in Debian 12; a later kernel may ship .ko.xz (busybox insmod wants plain .ko).
  ko=$(find "$WORK/kernel/lib/modules" -name "$mod.ko" -o -name "$mod.ko.xz" | head -n 1)
  [[ -n $ko ]] || die "module $mod not found in $KPKG"
  case $ko in
    *.xz) xz -dc "$ko" > "$ROOTFS/mods/$mod.ko" ;;
    *) cp "$ko" "$ROOTFS/mods/$mod.ko" ;;
  esac
done

# /init (quoted here-doc: runs in the guest as written; @MODULES@ is filled in below).
cat > "$ROOTFS/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in @MODULES@; do insmod "/mods/$m.ko" || echo "VIRTFLEET-ERROR insmod $m"; done
echo "VIRTFLEET-GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"

# Native PCIe hotplug (pciehp) blinks a port's power indicator while it powers a slot up or down,
# and QEMU refuses device_del meanwhile ("guest is busy"). Find, once, every PCIe port's offset of
# the Slot Control high byte in its config space (walking the capability list to the PCI Express
# capability, ID 0x10; Slot Control is at +0x18); then each round reads just that byte.
byte() { off=$2; set -- $1; shift "$off"; echo $((0x$1)); }   # byte $2 of hex dump $1
ports=""
for dev in /sys/bus/pci/devices/*; do
  [ "$(cat "$dev/class" 2>/dev/null)" = 0x060400 ] || continue
  cfg=$(od -An -tx1 -v -N 256 "$dev/config" 2>/dev/null | tr -s ' \n' '  ')
  ptr=$(byte "$cfg" 52); hops=0
  while [ "$ptr" -ne 0 ] && [ "$hops" -lt 48 ]; do
    if [ "$(byte "$cfg" "$ptr")" -eq 16 ]; then ports="$ports $dev:$((ptr + 25))"; break; fi
    ptr=$(byte "$cfg" $((ptr + 1))); hops=$((hops + 1))
  done
done
# The loop below runs all the time, so it avoids forks and sysfs walks (costly under TCG): read
# builtins instead of cat/cut, read -t on an idle FIFO instead of sleep, and the ports are only
# looked at while something changed recently (boot, a disk came or went) until none blinks.
mkfifo /idle && exec 3<>/idle
count_blinking() {   # sets $blink: occupied ports whose power indicator control is 10b (blinking)
  blink=0
  for p in $ports; do
    dev=${p%:*}
    set -- "$dev"/0000:*
    [ -e "$1" ] || continue
    hi=$(od -An -tu1 -j "${p##*:}" -N 1 "$dev/config")
    [ $((hi & 3)) -eq 2 ] && blink=$((blink + 1))
  done
}

# One line whenever the state changes: block devices as name:serial (virtio-blk has a serial)
# and the number of blinking ports.
last="(boot)"; last_disks="(boot)"; blink=0; watch=10
while :; do
  disks=""; n=0
  for d in /sys/block/*; do
    [ -e "$d" ] || continue
    b=${d##*/}
    case $b in loop*|ram*) continue ;; esac
    s=-; read -r s 2>/dev/null < "$d/serial"
    disks="$disks${disks:+,}$b:${s:--}"; n=$((n + 1))
  done
  [ "$disks" != "$last_disks" ] && watch=10 && last_disks=$disks
  if [ "$watch" -gt 0 ]; then
    count_blinking
    if [ "$blink" -gt 0 ]; then watch=10; else watch=$((watch - 1)); fi
  fi
  now="n=$n blink=$blink disks=$disks"
  if [ "$now" != "$last" ]; then
    read -r up _ < /proc/uptime
    echo "VIRTFLEET-DEV t=$up $now"
    last=$now
  fi
  read -r -t 0.2 -u 3 _
done
EOF
sed -i "s/@MODULES@/${MODULES[*]}/" "$ROOTFS/init"
chmod 0755 "$ROOTFS/init"

(cd "$ROOTFS" && find . | "$ROOTFS/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -9 > "$WORK/initrd.img"
cp "$VMLINUZ" "$WORK/vmlinuz"
printf 'format=%s\nkernel_package=%s\nkernel=%s\nbusybox=%s\nmodules=%s\n' "$FORMAT" "$KPKG" "${VMLINUZ##*/}" \
  "$(dpkg-deb -f "$WORK"/busybox-static_*.deb Version)" "${MODULES[*]}" > "$WORK/BUILD-INFO"
chmod 0644 "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/BUILD-INFO"
# BUILD-INFO (the format stamp built() checks) last: a crash in between leaves "not built".
mv -f "$WORK/initrd.img" "$OUT/initrd.img"
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
mv -f "$WORK/BUILD-INFO" "$OUT/BUILD-INFO"
log "built $(du -sh "$OUT/vmlinuz" | cut -f1) vmlinuz + $(du -sh "$OUT/initrd.img" | cut -f1) initrd.img from $KPKG"
echo "$OUT"
