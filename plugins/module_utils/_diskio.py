# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk I/O policy: io= and cache= of every disk's <driver> (private, pure logic).

Facts the rules rest on:
- QEMU's blockdev cache options per libvirt cache mode (qemu-block-drivers, "cache"):
  cache.writeback / cache.direct / cache.no-flush.
- io='native' (Linux AIO) needs O_DIRECT; with a host page cache QEMU silently fell back to
  threads, -blockdev refuses it, and libvirt (qemuValidateDomainDeviceDefDiskFrontend) rejects
  "io='native' needs either no disk cache or directsync cache mode" at define and start.
- io='io_uring' exists from libvirt 6.3.0 and QEMU 5.0.0.
- With no cache= libvirt passes nothing and QEMU's default is writeback; with no io= QEMU uses
  threads. The effective values below account for that.
- io= reaches QEMU only on a local file or block device: libvirt 9.0 adds "aio" only in
  qemuBlockStorageSourceGetFileProps (drivers file, host_device, host_cdrom), and QEMU 7.2's
  blockdev schema has an aio member for exactly those three. Network protocols (nbd, rbd,
  gluster, iscsi, http(s), ftp(s), tftp, ssh, nfs, ...), nvme, dir (vvfat) and vhostvdpa get no
  aio; QEMU answers "Parameter 'aio' is unexpected" for nbd and vvfat. Measured on the lab daemon
  (docs/disk-io.md, tests/integration/test_diskio_applicability.py). There a requested io= is
  reported as not applicable (rule io-not-applicable, skipped) and not written.
- libvirt's native check (qemuValidateDomainDeviceDefDiskFrontend) does not look at the disk
  type: io='native' with a cached mode is refused on an nbd or dir disk too, so that rule is
  still fixed there although QEMU ignores the io mode.
- cache= maps to the frontend's write cache plus cache.direct/cache.no-flush, which libvirt puts
  on every backend node, network ones included: cache requests still apply there.
- volume disks are resolved through their pool at start (virDomainStorageSourceTranslateSourcePool):
  dir/fs/netfs/logical/disk/scsi/zfs/vstorage pools give a file or block device (io applies) or a
  directory, iscsi pools give a block device unless <source mode='direct'> (libiscsi, network),
  iscsi-direct pools give network iscsi. The domain XML does not say which, so a volume counts as
  io-capable except with mode='direct'.
- vhostvdpa (libvirt >= 9.8, virtio-blk-vhost-vdpa) has no aio and libvirt requires cache none or
  directsync on it; vhostuser disks have no host-side cache/aio and libvirt refuses both
  attributes on them.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _vocab
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest, UnsupportedByHost
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import PENDING, SKIPPED, Change, Edit

KEEP = "keep"
CACHE_FLAGS = {
    # mode:         (writeback, direct, no_flush)
    "none": (True, True, False),
    "writeback": (True, False, False),
    "writethrough": (False, False, False),
    "directsync": (False, True, False),
    "unsafe": (True, False, True),
}
CACHE_MODES = tuple(CACHE_FLAGS)
IO_MODES = ("threads", "native", "io_uring")
DEFAULT_CACHE = "writeback"
DEFAULT_IO = "threads"
IO_URING_MIN_LIBVIRT = (6, 3, 0)
IO_URING_MIN_QEMU = (5, 0, 0)

RULE_NATIVE = "io-native-needs-direct-cache"
RULE_CACHE = "cache-policy"
RULE_IO = "io-policy"
RULE_NATIVE_NA = "io-native-not-applicable"
RULE_IO_NA = "io-not-applicable"
RULE_CACHE_NA = "cache-not-applicable"
REPORT_ONLY_RULES = (RULE_NATIVE_NA, RULE_IO_NA, RULE_CACHE_NA)
RULE_LIVE = "live-differs"
RULE_TRANSIENT = "transient-domain"

# Requested cache/io policies apply to real block devices only: a cdrom's or floppy's cache is
# not a data-safety knob. The native rule applies to every disk of the qemu driver, cdroms
# included, because libvirt refuses to start a domain with any such disk. vhost-user disks have
# no host-side cache/aio at all and are never touched.
POLICY_DEVICES = ("disk", "lun")

# Disk types whose source QEMU opens as a local file or block device (aio applies).
IO_CAPABLE_TYPES = ("file", "block")
# QEMU block driver that libvirt uses per disk type where aio does not exist.
_NO_AIO_DRIVER = {
    "dir": "vvfat (an emulated FAT image of a host directory)",
    "nvme": "nvme (QEMU's userspace NVMe driver over VFIO)",
    "vhostvdpa": "virtio-blk-vhost-vdpa (libblkio)",
}
# Disk types on which libvirt accepts only a direct cache mode.
DIRECT_CACHE_ONLY_TYPES = ("vhostvdpa",)


def effective_flags(cache):
    writeback, direct, no_flush = CACHE_FLAGS[cache or DEFAULT_CACHE]
    return {"writeback": writeback, "direct": direct, "no_flush": no_flush}


def is_direct(cache):
    return CACHE_FLAGS[cache or DEFAULT_CACHE][1]


def settings(cache, io):
    """cache/io of a finding: the effective values and whether the XML sets them (None = not set).

    The blockdev flags follow from ``cache`` (:data:`CACHE_FLAGS`); a finding leaves them out, the
    per-disk report (:func:`describe`, :func:`disk_report`) carries them.
    """
    return {"cache": cache or DEFAULT_CACHE, "io": io or DEFAULT_IO, "cache_set": cache is not None,
            "io_set": io is not None}


def describe(cache, io):
    """cache/io as set in the XML (None = not set) plus the effective values and flags."""
    out = settings(cache, io)
    if out["cache"] in CACHE_FLAGS:
        out.update(effective_flags(out["cache"]))
    return out


def validate_request(io, cache):
    """Reject combinations that can never be valid before anything is read or changed."""
    if io not in (KEEP,) + IO_MODES:
        raise InvalidRequest("io=%r is not one of keep, %s." % (io, ", ".join(IO_MODES)))
    if cache not in (KEEP,) + CACHE_MODES:
        raise InvalidRequest("cache=%r is not one of keep, %s." % (cache, ", ".join(CACHE_MODES)))
    if io == "native" and cache not in (KEEP, "none", "directsync"):
        raise InvalidRequest(
            "io=native cannot be combined with cache=%s: native AIO needs O_DIRECT, i.e. cache=none "
            "or cache=directsync (libvirt rejects the combination). Use cache: none, or io: threads." % cache)


def check_host_support(io, libvirt_version, hypervisor, hypervisor_version):
    """io_uring needs libvirt >= 6.3 and QEMU >= 5.0 (versions as (major, minor, micro))."""
    if io != "io_uring":
        return
    too_old = libvirt_version < IO_URING_MIN_LIBVIRT or hypervisor != "QEMU" or hypervisor_version < IO_URING_MIN_QEMU
    if too_old:
        raise UnsupportedByHost(
            "io=io_uring needs libvirt >= 6.3.0 and QEMU >= 5.0.0, but this host has libvirt %s and %s %s. "
            "Upgrade libvirt/QEMU on this host or use io: threads (or native with cache: none)."
            % (_v(libvirt_version), hypervisor, _v(hypervisor_version)),
            libvirt_version=_v(libvirt_version), hypervisor=hypervisor, hypervisor_version=_v(hypervisor_version))


def _v(version):
    return ".".join(str(p) for p in version)


def policy_disks(root):
    """(path, element) of every qemu-driver disk (any device=), in document order."""
    return [(path, el) for path, el in _domxml.devices(root) if is_policy_disk(el)]


def is_policy_disk(el):
    """Whether a device element is a disk of QEMU's own driver (not vhost-user), whatever its device=."""
    if el.tag != "disk" or el.get("type") == "vhostuser":
        return False
    return _domxml.attr(el, "driver", "name") in (None, "qemu")


def io_not_applicable(el):
    """Why io= of this <disk> has no effect in QEMU, or None when it does (or may: volumes)."""
    dtype = el.get("type") or "file"
    if dtype in IO_CAPABLE_TYPES:
        return None
    if dtype == "network":
        protocol = _domxml.attr(el, "source", "protocol") or "unknown"
        return ("network disk (protocol %s): QEMU's %s block driver has no aio option, its I/O goes through "
                "its own network client; libvirt passes io= only to file and host_device nodes" % (protocol, protocol))
    if dtype == "volume":
        if _domxml.attr(el, "source", "mode") == "direct":
            return ("volume disk with mode='direct': libvirt opens the iSCSI LUN through QEMU's iscsi block driver "
                    "(libiscsi), which has no aio option")
        # Resolved through the pool at start: usually a file or block device, where io applies.
        return None
    if dtype in _NO_AIO_DRIVER:
        return ("%s disk: QEMU's %s driver has no aio option; libvirt passes io= only to file and host_device "
                "nodes" % (dtype, _NO_AIO_DRIVER[dtype]))
    # Unknown (future) disk types: assume io may matter, as before.
    return None


def desired_driver(cache, io, want_cache, want_io, io_na=None, direct_cache_only=False):
    """Plan one disk. Returns (new_cache, new_io, [(rule, message), ...]); None = leave unset.

    ``io_na``: why io= has no effect on this disk (see :func:`io_not_applicable`), or None.
    ``direct_cache_only``: libvirt accepts only cache none/directsync on this disk (vhostvdpa).
    """
    reasons = []
    new_cache, new_io = cache, io
    if want_cache != KEEP and (cache or DEFAULT_CACHE) != want_cache:
        if direct_cache_only and not is_direct(want_cache):
            reasons.append((RULE_CACHE_NA, "cache=%s requested, but libvirt accepts only cache none or directsync on "
                            "this disk type; nothing changed, cache stays %s" % (want_cache, cache or DEFAULT_CACHE)))
        else:
            new_cache = want_cache
            reasons.append((RULE_CACHE, "cache %s -> %s as requested" % (cache or "default (writeback)", want_cache)))
    if want_io != KEEP and (io or DEFAULT_IO) != want_io:
        if io_na and io == "native" and not is_direct(new_cache):
            pass  # the native rule below rewrites io anyway (libvirt would refuse the domain)
        elif io_na:
            reasons.append((RULE_IO_NA, "io=%s requested, but io has no effect here: %s. Nothing changed, io stays "
                            "%s" % (want_io, io_na, io or "unset (threads)")))
        elif want_io == "native" and not is_direct(new_cache):
            reasons.append((RULE_NATIVE_NA, "io=native requested but cache=%s is not a direct mode; io stays %s. "
                            "Request cache: none (or directsync) to use native." % (new_cache or DEFAULT_CACHE, io or DEFAULT_IO)))
        else:
            new_io = want_io
            reasons.append((RULE_IO, "io %s -> %s as requested" % (io or "default (threads)", want_io)))
    if new_io == "native" and not is_direct(new_cache):
        new_io = "threads"
        if new_cache != cache and is_direct(cache):
            why = "cache change to %s makes io=native invalid" % (new_cache or DEFAULT_CACHE)
        elif io_na:
            why = "io=native with cache=%s is invalid (libvirt refuses to start the domain)" % (
                cache or "default (writeback)")
        else:
            why = "io=native with cache=%s is invalid (QEMU falls back to threads, blockdev and libvirt reject it)" % (
                cache or "default (writeback)")
        if io_na:
            why += ("; QEMU ignores io on this disk, but libvirt checks io=native against the cache mode on every "
                    "disk type")
        reasons.append((RULE_NATIVE, "%s; moved to io=threads" % why))
    return new_cache, new_io, reasons


def plan_domain(state, want_io=KEEP, want_cache=KEEP):
    """Every io/cache deviation of every policy disk of one domain, as Changes."""
    live = {}
    if state.active and state.live_xml:
        for _path, el in policy_disks(state.live_root()):
            live[_domxml.attr(el, "target", "dev")] = (_domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io"))
    changes = []
    for path, el, ident in state.inactive_devices():
        if not is_policy_disk(el):
            continue
        cache, io = _domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io")
        io_na = io_not_applicable(el)
        kind = {"io_na": io_na, "direct_cache_only": (el.get("type") or "file") in DIRECT_CACHE_ONLY_TYPES}
        if el.get("device", "disk") in POLICY_DEVICES:
            new_cache, new_io, reasons = desired_driver(cache, io, want_cache, want_io, **kind)
        else:
            new_cache, new_io, reasons = desired_driver(cache, io, KEEP, KEEP, **kind)
        device = {k: ident[k] for k in ("kind", "target", "bus", "alias", "source", "serial", "path")}
        current, desired = settings(cache, io), settings(new_cache, new_io)
        target = ident["target"]
        live_pair = live.get(target)
        # Where io has no effect, a running domain differing only in io runs the same way.
        live_differs = live_pair is not None and (
            _effective(live_pair)[:1 if io_na else 2] != _effective((new_cache, new_io))[:1 if io_na else 2])
        for rule, message in reasons:
            if rule in REPORT_ONLY_RULES:
                edits, status = (), SKIPPED
            else:
                attrs = []
                if rule == RULE_CACHE:
                    attrs.append(("cache", new_cache))
                else:
                    attrs.append(("io", new_io))
                # <driver> is the first child of <disk> in libvirt's formatting.
                edits, status = (Edit(path, "driver", _driver_attrs(el, attrs), child_first=True),), ""
            if not state.persistent and status != SKIPPED:
                edits, status = (), SKIPPED
                message += "; transient domain (no persistent definition): fix it where it is defined"
            changes.append(Change(
                check=_vocab.CHECK_DISK_IO, domain=state.name, uuid=state.uuid, device=device, rule=rule, current=current, desired=desired,
                message="%s: %s" % (target or path, message), edits=edits, status=status,
                pending_restart=bool(live_differs and status != SKIPPED),
            ))
        if not reasons and live_differs:
            changes.append(Change(
                check=_vocab.CHECK_DISK_IO, domain=state.name, uuid=state.uuid, device=device, rule=RULE_LIVE,
                current=settings(*live_pair), desired=desired, status=PENDING, pending_restart=True,
                message="%s: the running domain still uses cache=%s io=%s; the persistent definition "
                        "(cache=%s io=%s) applies at the next cold boot (shut down and start; a reboot "
                        "inside the guest is not enough)" % (
                            target, *_effective(live_pair), *_effective((new_cache, new_io))),
            ))
    return changes


def _driver_attrs(el, attrs):
    # A <driver> we create needs name='qemu'; an existing one keeps its name.
    if el.find("driver") is None:
        return (("name", "qemu"),) + tuple(attrs)
    return tuple(attrs)


def _effective(pair):
    cache, io = pair
    return (cache or DEFAULT_CACHE, io or DEFAULT_IO)


def disk_report(xml_text):
    """Per-disk effective cache/io and blockdev flags of one domain XML (for the result)."""
    out = []
    root = _domxml.parse(xml_text) if isinstance(xml_text, (str, bytes)) else xml_text  # text or a parsed root
    for path, el in policy_disks(root):
        item = {"target": _domxml.attr(el, "target", "dev"), "alias": _domxml.attr(el, "alias", "name"), "path": path}
        item.update(describe(_domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io")))
        out.append(item)
    return out
