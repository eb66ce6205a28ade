"""Helpers of the virt_device_alias / virt_domain_info integration tests (no pytest fixtures here).

- ``rich_domain_xml``: a q35 no-OS domain with the device mix these modules care about: a virtio
  disk with <serial>, a scsi disk without, NICs (several may share one MAC), an optional Open
  vSwitch port (define-only: there is no OVS bridge in the lab), an rng and a guest-agent channel.
- ``run_named``: runs any module of the collection the way Ansible does (``python -m <module>
  args.json``), like conftest's ``run_module`` (which is fixed to virt_disk_io_policy).
- Readers of libvirt XML: aliases per device, and the document without aliases.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass

import libvirt
from lxml import etree

from _itlib import ModuleRun, image_dir, parse, run_module

ALIAS_TYPES = ("disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel")
RNG_BACKEND = "/dev/urandom"
AGENT = "org.qemu.guest_agent.0"


def new_name(suffix):
    return "vf-it-%s-%s" % (uuid.uuid4().hex[:8], suffix)


@dataclass(frozen=True)
class Nic:
    mac: str
    kind: str = "user"          # user | ovs (bridge + openvswitch virtualport: define-only here)
    interfaceid: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class RDisk:
    target: str
    bus: str
    serial: str | None = None
    alias: str | None = None


def image_path(name, target):
    return os.path.join(image_dir(name), target + ".img")


def make_images(name, targets):
    os.makedirs(image_dir(name), exist_ok=True)
    for target in targets:
        with open(image_path(name, target), "wb") as handle:
            handle.truncate(1024 * 1024)


def _alias(alias):
    return ["      <alias name='%s'/>" % alias] if alias else []


def rich_domain_xml(name, domain_type, disks, nics, rng=True, channel=True):
    out = ["<domain type='%s'>" % domain_type, "  <name>%s</name>" % name,
           "  <memory unit='MiB'>64</memory>", "  <vcpu>1</vcpu>",
           "  <os><type arch='x86_64' machine='q35'>hvm</type></os>",
           "  <features><acpi/></features>", "  <devices>",
           "    <controller type='pci' index='0' model='pcie-root'/>"]
    out += ["    <controller type='pci' index='%d' model='pcie-root-port'/>" % i for i in range(1, 9)]
    out.append("    <controller type='scsi' index='0' model='virtio-scsi'/>")
    for disk in disks:
        out += ["    <disk type='file' device='disk'>",
                "      <driver name='qemu' type='raw'/>",
                "      <source file='%s'/>" % image_path(name, disk.target),
                "      <target dev='%s' bus='%s'/>" % (disk.target, disk.bus)]
        if disk.serial:
            out.append("      <serial>%s</serial>" % disk.serial)
        out += _alias(disk.alias) + ["    </disk>"]
    for nic in nics:
        if nic.kind == "ovs":
            out += ["    <interface type='bridge'>", "      <mac address='%s'/>" % nic.mac,
                    "      <source bridge='br-vf-it'/>",
                    "      <virtualport type='openvswitch'><parameters interfaceid='%s'/></virtualport>"
                    % nic.interfaceid]
        else:
            out += ["    <interface type='user'>", "      <mac address='%s'/>" % nic.mac]
        out += ["      <model type='virtio'/>"] + _alias(nic.alias) + ["    </interface>"]
    if rng:
        out += ["    <rng model='virtio'>", "      <backend model='random'>%s</backend>" % RNG_BACKEND,
                "    </rng>"]
    if channel:
        out += ["    <channel type='unix'>", "      <target type='virtio' name='%s'/>" % AGENT, "    </channel>"]
    out += ["    <memballoon model='none'/>", "  </devices>", "</domain>"]
    return "\n".join(out) + "\n"


def define_rich(lab, domains, suffix, disks, nics, start=False, **kw):
    """Define (and start) a rich domain; ``domains`` (conftest) removes it at module end."""
    name = new_name(suffix)
    domains.names.append(name)      # cleanup: destroy + undefine + image dir, also on failure
    make_images(name, [d.target for d in disks])
    dom = lab.conn.defineXML(rich_domain_xml(name, lab.domain_type, disks, nics, **kw))
    lab.owned.add(name)
    if start:
        dom.create()
    return name


# --- expected aliases, computed independently of the module from its documented rules --------------

def h8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def mac_alias(mac, n=1):
    return "ua-net-%s%s" % (mac.replace(":", "").lower(), "" if n == 1 else "-%d" % n)


def file_alias(path):
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", path.rsplit("/", 1)[-1]).strip("-")
    return "ua-disk-%s-%s" % (base, h8(path))


RNG_ALIAS = "ua-rng-urandom-%s-1" % h8(RNG_BACKEND)
CHANNEL_ALIAS = "ua-channel-org-qemu-guest_agent-0"


# --- running a module ---------------------------------------------------------------------------

Run = ModuleRun


def run_named(module, args, workdir, check=False, diff=False):
    return run_module(args, workdir, check=check, diff=diff, module=module)


# --- reading libvirt's XML ----------------------------------------------------------------------

def device_aliases(xml_text, kinds=ALIAS_TYPES):
    """[(tag, identity, alias)] of every device of ``kinds`` in document order.

    identity: disk target, interface MAC (+ interfaceid), rng backend, channel target name.
    """
    out = []
    for el in parse(xml_text).find("devices"):
        if not isinstance(el.tag, str) or el.tag not in kinds:
            continue
        if el.tag == "disk":
            ident = el.find("target").get("dev")
        elif el.tag == "interface":
            ident = el.find("mac").get("address")
            params = el.find("virtualport/parameters")
            if params is not None:
                ident += "/" + params.get("interfaceid")
        elif el.tag == "rng":
            ident = el.findtext("backend")
        elif el.tag == "channel":
            ident = el.find("target").get("name")
        else:
            ident = None
        alias = el.find("alias")
        out.append((el.tag, ident, alias.get("name") if alias is not None else None))
    return out


def alias_map(xml_text, kinds=ALIAS_TYPES):
    return [a for _t, _i, a in device_aliases(xml_text, kinds)]


def without_aliases(xml_text):
    """C14N of the document with every device's <alias> removed."""
    root = parse(xml_text)
    for alias in root.iterfind("devices/*/alias"):
        alias.getparent().remove(alias)
    return etree.tostring(root, method="c14n")


def hotplug_scsi_disk(lab, name, target, live_only=True):
    """Attach a raw scsi disk to the running domain (LIVE only by default); returns its image path."""
    make_images(name, [target])
    xml = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
           "<target dev='%s' bus='scsi'/></disk>" % (image_path(name, target), target))
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    if not live_only:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    lab.dom(name).attachDeviceFlags(xml, flags)
    return image_path(name, target)
