"""Helpers of the virt_detach integration tests and of benchmarks/detach_concurrency.py.

- ``build_guest()`` runs scripts/build-guest.sh (instant when the guest is built).
- ``detach_domain_xml()`` writes the domains these tests need: a q35 domain with pcie-root and
  root ports for hot-plug, optionally booting the busybox guest (direct kernel boot, console on a
  ``<serial type='file'>``), disks with or without ``ua-`` aliases and serials.
- ``Console`` reads that console log: the guest prints ``VIRTFLEET-GUEST-READY`` once and a
  ``VIRTFLEET-DEV ... disks=vda:SERIAL,...`` line whenever its block devices change.
- ``run_detach_module()`` runs virt_detach the way Ansible runs it on the target
  (``python -m <module> args.json``) and returns a ``DetachRun``.

No pytest fixtures here (the test modules hold them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import libvirt

from _itlib import ROOT, TARGET, ModuleRun, image_dir, parse, run_module

BUILD_GUEST = os.path.join(ROOT, "scripts", "build-guest.sh")
# On a generation target the guest lives in its shared directory, where QEMU in the tree sees it.
GUEST_DIR = TARGET.shared_dir("guest", os.environ.get("VIRTFLEET_GUEST_DIR", "/var/lib/libvirt/images/virtfleet-guest"))
READY = "VIRTFLEET-GUEST-READY"
DEV_LINE = re.compile(r"VIRTFLEET-DEV t=(?P<t>[0-9.]+) n=(?P<n>\d+) blink=(?P<blink>\d+) disks=(?P<disks>\S*)")
CMDLINE = "console=ttyS0 panic=-1 quiet"
# The guest boots in 5-6.5 s under TCG and sees a hot-plugged disk 0.25-0.7 s after the attach;
# these are only upper bounds for waiting (no test asserts on durations).
BOOT_DEADLINE = 120.0
CONSOLE_DEADLINE = 30.0


class LabError(RuntimeError):
    """The lab (guest build, boot) is not usable; tests report it as a failure."""


LAB_GUEST_DIR = os.environ.get("VIRTFLEET_GUEST_DIR", "/var/lib/libvirt/images/virtfleet-guest")


def build_guest(out_dir=GUEST_DIR):
    """(vmlinuz, initrd.img) of the busybox guest, building it first when needed (5-8 s). A
    generation target's copy is the machine's guest (built once) copied into its shared dir."""
    build_dir = LAB_GUEST_DIR if out_dir != LAB_GUEST_DIR and TARGET.is_gen else out_dir
    proc = subprocess.run(["bash", BUILD_GUEST, build_dir], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise LabError("scripts/build-guest.sh %s failed (rc %d):\n%s%s"
                       % (build_dir, proc.returncode, proc.stdout, proc.stderr))
    if build_dir != out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for base in ("vmlinuz", "initrd.img", "BUILD-INFO"):
            src, dst = os.path.join(build_dir, base), os.path.join(out_dir, base)
            if os.path.exists(src) and (not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src)):
                shutil.copy2(src, dst + ".tmp")
                os.replace(dst + ".tmp", dst)
    return os.path.join(out_dir, "vmlinuz"), os.path.join(out_dir, "initrd.img")


def new_name(suffix):
    """vf-it-<8 hex>-dt-<suffix>: the suite's naming scheme, "dt" marking the detach tests."""
    return "vf-it-%s-dt-%s" % (uuid.uuid4().hex[:8], suffix)


def make_image(name, basename, size=1024 * 1024):
    """A sparse raw image in the domain's image dir (removed by the ``domains`` cleanup)."""
    path = os.path.join(image_dir(name), basename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def disk_xml(source, target, bus="virtio", alias=None, serial=None, shareable=False):
    """One raw file disk. ``alias`` must be a valid user alias (ua-...) or None (no alias)."""
    out = ["<disk type='file' device='disk'>", "  <driver name='qemu' type='raw'/>",
           "  <source file='%s'/>" % source, "  <target dev='%s' bus='%s'/>" % (target, bus)]
    if serial:
        out.append("  <serial>%s</serial>" % serial)
    if shareable:
        out.append("  <shareable/>")
    if alias:
        out.append("  <alias name='%s'/>" % alias)
    out.append("</disk>")
    return "\n".join(out)


def detach_domain_xml(name, domain_type, disks=(), *, guest=None, console=None, machine="q35", memory_mib=64,
                      root_ports=16, scsi=True, macs=()):
    """A q35 domain: pcie-root + ``root_ports`` pcie-root-ports (hot-plug needs free ones).

    ``guest``: (vmlinuz, initrd) for direct kernel boot of the busybox guest, else no OS (SeaBIOS
    halts, so no PCI unplug is ever acknowledged). ``console``: path of a file the first serial
    port writes to. ``disks``: strings from :func:`disk_xml`. ``macs``: one <interface
    type='user'> per MAC (without alias). No device has an alias unless the caller gave one.
    """
    out = ["<domain type='%s'>" % domain_type, "  <name>%s</name>" % name,
           "  <memory unit='MiB'>%d</memory>" % memory_mib, "  <vcpu>1</vcpu>", "  <os>",
           "    <type arch='x86_64' machine='%s'>hvm</type>" % machine]
    if guest:
        out += ["    <kernel>%s</kernel>" % guest[0], "    <initrd>%s</initrd>" % guest[1],
                "    <cmdline>%s</cmdline>" % CMDLINE]
    out += ["  </os>", "  <features><acpi/></features>", "  <on_reboot>destroy</on_reboot>", "  <devices>",
            "    <controller type='pci' index='0' model='pcie-root'/>"]
    out += ["    <controller type='pci' index='%d' model='pcie-root-port'/>" % i for i in range(1, root_ports + 1)]
    if scsi:
        out.append("    <controller type='scsi' index='0' model='virtio-scsi'/>")
    out += ["    " + d.replace("\n", "\n    ") for d in disks]
    for mac in macs:
        out += ["    <interface type='user'>", "      <mac address='%s'/>" % mac,
                "      <model type='virtio'/>", "    </interface>"]
    if console:
        out += ["    <serial type='file'>", "      <source path='%s'/>" % console,
                "      <target port='0'/>", "    </serial>"]
    out += ["    <memballoon model='none'/>", "  </devices>", "</domain>"]
    return "\n".join(out) + "\n"


# --- talking to the lab daemon ------------------------------------------------------------------

def reconnecting(lab, call):
    """``call(conn)``, once more on a fresh connection if the daemon was restarted meanwhile (other
    tests of the suite restart libvirtd; a cached connection then says "client socket is closed")."""
    try:
        return call(lab.conn)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_SYSTEM_ERROR,
                                        libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT):
            raise
        lab.drop_connection()
        return call(lab.conn)


def live_xml(lab, name):
    return reconnecting(lab, lambda conn: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))


def inactive_xml(lab, name):
    flags = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE
    return reconnecting(lab, lambda conn: conn.lookupByName(name).XMLDesc(flags))


def attach(lab, name, xml, flags):
    reconnecting(lab, lambda conn: conn.lookupByName(name).attachDeviceFlags(xml, flags))


# --- reading XML back ---------------------------------------------------------------------------

def disk_aliases(xml_text):
    """{target dev: alias or None} of every disk."""
    out = {}
    for disk in parse(xml_text).iterfind("devices/disk"):
        alias = disk.find("alias")
        out[disk.find("target").get("dev")] = alias.get("name") if alias is not None else None
    return out


def disk_targets(xml_text):
    return sorted(disk_aliases(xml_text))


def has_alias(xml_text, alias):
    return any(a.get("name") == alias for a in parse(xml_text).iterfind("devices/*/alias"))


# --- the guest's console ------------------------------------------------------------------------

class Console:
    """The guest's serial console log (written by QEMU through <serial type='file'>)."""

    def __init__(self, path):
        self.path = path

    def text(self):
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def tail(self, lines=15):
        return "\n".join(self.text().splitlines()[-lines:])

    def last_state(self):
        """The last complete VIRTFLEET-DEV line (a match of DEV_LINE), None before the first one."""
        text = self.text()
        complete = text[:text.rfind("\n") + 1]  # QEMU may be in the middle of writing the last line
        matches = list(DEV_LINE.finditer(complete))
        return matches[-1] if matches else None

    def disks(self):
        """{guest disk name: serial} from the last VIRTFLEET-DEV line, None before the first one."""
        state = self.last_state()
        if state is None:
            return None
        return dict(item.split(":", 1) for item in state.group("disks").split(",") if item)

    def blinking(self):
        """PCIe ports whose power indicator blinks (pciehp busy with a slot), None before the first line."""
        state = self.last_state()
        return None if state is None else int(state.group("blink"))

    def serials(self):
        disks = self.disks()
        return None if disks is None else set(disks.values())

    def wait(self, predicate, what, deadline=CONSOLE_DEADLINE):
        """Poll until ``predicate(self)`` is true; LabError naming ``what`` and the console tail if not."""
        end = time.monotonic() + deadline
        while True:
            if predicate(self):
                return
            if time.monotonic() > end:
                raise LabError("the guest console never showed %s within %.0f s; last lines of %s:\n%s"
                               % (what, deadline, self.path, self.tail()))
            time.sleep(0.05)

    def wait_ready(self, deadline=BOOT_DEADLINE):
        """Until the ready marker and a first device line with no slot busy."""
        self.wait(lambda c: READY in c.text() and c.blinking() == 0, READY + " and blink=0", deadline)

    def wait_serials(self, present=(), absent=(), deadline=CONSOLE_DEADLINE):
        """Until every serial of ``present`` is listed by the guest, none of ``absent`` is, and no
        power indicator blinks (with native PCIe hotplug the guest lists a new disk a moment before
        it has finished powering the slot up, and QEMU refuses to unplug it until then)."""
        present, absent = set(present), set(absent)

        def ok(console):
            seen = console.serials()
            return seen is not None and present <= seen and not absent & seen and console.blinking() == 0
        self.wait(ok, "disks %s present and %s absent, no slot busy" % (sorted(present), sorted(absent)), deadline)


# --- running the module -------------------------------------------------------------------------

class DetachRun(ModuleRun):
    @property
    def devices(self):
        return self.result.get("devices", [])

    def describe(self):
        return "rc=%d\nresult=%s\nstderr=%s" % (self.rc, json.dumps(self.result, indent=1), self.stderr[-3000:])


def run_detach_module(args, workdir, check=False):
    """Run virt_detach as ``python -m <module> args.json`` in ``workdir``; a DetachRun."""
    return run_module(args, workdir, check=check, module="virt_detach", timeout=900, result_class=DetachRun)
