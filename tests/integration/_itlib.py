"""Pure helpers of the integration tests: domain XML for the lab and ways to read it back.

No libvirt and no pytest here; ``conftest.py`` holds the fixtures that use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

from lxml import etree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(ROOT, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
from _target import current, is_native_io_refusal, refuses_long_vnc_password  # noqa: E402

COLLECTIONS = os.path.join(ROOT, ".build", "collections")  # made by tests/conftest.py
# VIRTFLEET_TARGET (tests/_target.py): the lab, or one host of the mixed-generation fleet.
TARGET = current()
# Disk images: on a generation host in its shared directory (the same path for QEMU in the tree).
IMAGES = TARGET.shared_dir("images", "/var/lib/libvirt/images/virtfleet-test")
META_NS = "urn:virtfleet:integration-tests"
# libvirt 9.0 and 11.3 refuse VNC passwords longer than 8 characters at define and at start
# ("VNC password is 9 characters long, only 8 permitted"), so the API-defined fixture uses 8;
# the 9-character one exists only in a legacy definition loaded from /etc/libvirt/qemu. libvirt
# 7.0 accepts it (docs/generations.md, row 1): LONG_VNC_REFUSED says which behaviour to expect.
VNC_PASSWORD = "S3cr3t-p"
LEGACY_VNC_PASSWORD = "S3cr3t-pw"
LONG_VNC_REFUSED = refuses_long_vnc_password(TARGET)
CONFIG_UNSUPPORTED = 67   # VIR_ERR_CONFIG_UNSUPPORTED


def native_io_refused(exc):
    """True when ``exc`` (a libvirtError) is libvirt's refusal of io='native' on a cached disk:
    code 67, in the wording of any generation (7.0 says "native I/O needs ...", 9.0+ "io='native'
    needs ..."; docs/generations.md, row 2)."""
    return exc.get_error_code() == CONFIG_UNSUPPORTED and is_native_io_refusal(str(exc))


@dataclass(frozen=True)
class Disk:
    """One file-backed raw disk; cache/io None means the attribute is absent from <driver>."""

    target: str
    bus: str = "scsi"
    cache: str | None = None
    io: str | None = None
    device: str = "disk"     # or "cdrom" (read-only, e.g. on bus sata)


def module_env():
    """Environment for a module or ansible-playbook run: the collection importable/findable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS, env.get("PYTHONPATH")) if p)
    env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
    return env


def image_dir(name):
    return os.path.join(IMAGES, name)


def domain_xml(name, domain_type, disks, *, macs=("52:54:00:7f:00:01", None), vnc_passwd=None, metadata=True,
               root_ports=8):
    """A q35 domain with no OS (SeaBIOS halts): pcie-root, root ports, virtio-scsi, NICs.

    ``macs``: one <interface type='user'> per entry; None lets libvirt pick the MAC.
    ``root_ports``: explicit pcie-root-ports. With fewer than the PCI devices need, libvirt adds
    the missing ones itself, at the end of the controllers (and sorts them on the next define).
    """
    out = ["<domain type='%s'>" % domain_type, "  <name>%s</name>" % name,
           "  <memory unit='MiB'>64</memory>", "  <vcpu>1</vcpu>"]
    if metadata:
        out += ["  <metadata>",
                "    <vfit:tag xmlns:vfit='%s'><vfit:owner id='42'>integration-tests</vfit:owner>"
                "<vfit:note>keep me</vfit:note></vfit:tag>" % META_NS,
                "  </metadata>"]
    out += ["  <os><type arch='x86_64' machine='q35'>hvm</type></os>",
            "  <features><acpi/></features>",
            "  <devices>",
            "    <controller type='pci' index='0' model='pcie-root'/>"]
    out += ["    <controller type='pci' index='%d' model='pcie-root-port'/>" % i for i in range(1, root_ports + 1)]
    out.append("    <controller type='scsi' index='0' model='virtio-scsi'/>")
    for disk in disks:
        attrs = "".join(" %s='%s'" % (k, v) for k, v in (("cache", disk.cache), ("io", disk.io)) if v)
        out += ["    <disk type='file' device='%s'>" % disk.device,
                "      <driver name='qemu' type='raw'%s/>" % attrs,
                "      <source file='%s'/>" % os.path.join(image_dir(name), disk.target + ".img"),
                "      <target dev='%s' bus='%s'/>" % (disk.target, disk.bus)]
        if disk.device == "cdrom":
            out.append("      <readonly/>")
        out.append("    </disk>")
    for mac in macs:
        out += ["    <interface type='user'>"]
        if mac:
            out.append("      <mac address='%s'/>" % mac)
        out += ["      <model type='virtio'/>", "    </interface>"]
    if vnc_passwd:
        out.append("    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='%s'/>" % vnc_passwd)
    out += ["    <memballoon model='none'/>", "  </devices>", "</domain>"]
    return "\n".join(out) + "\n"


def parse(xml_text):
    return etree.fromstring(xml_text.encode("utf-8") if isinstance(xml_text, str) else xml_text)


def drivers(xml_text):
    """{target: (cache, io)} of every disk, None where the attribute is absent."""
    out = {}
    for disk in parse(xml_text).iterfind("devices/disk"):
        driver = disk.find("driver")
        cache = driver.get("cache") if driver is not None else None
        io = driver.get("io") if driver is not None else None
        out[disk.find("target").get("dev")] = (cache, io)
    return out


def set_driver(xml_text, target, cache, io):
    """The same XML with <driver cache= io=> of one disk set (None removes the attribute)."""
    root = parse(xml_text)
    for disk in root.iterfind("devices/disk"):
        if disk.find("target").get("dev") != target:
            continue
        driver = disk.find("driver")
        for key, value in (("cache", cache), ("io", io)):
            if value is None:
                driver.attrib.pop(key, None)
            else:
                driver.set(key, value)
        return etree.tostring(root, encoding="unicode")
    raise KeyError(target)


def device_key(el):
    """How a device is recognised across a redefine: its tag and target/MAC/type+index."""
    if el.tag == "disk":
        return ("disk", el.find("target").get("dev"))
    if el.tag == "interface":
        return ("interface", el.find("mac").get("address"))
    if el.tag == "controller":
        return ("controller", "%s/%s" % (el.get("type"), el.get("index")))
    return (el.tag, el.get("type") or el.get("model") or "")


def device_order(xml_text):
    return [device_key(el) for el in parse(xml_text).find("devices") if isinstance(el.tag, str)]


def addresses(xml_text):
    """[(device key, address attributes)] of every <address> under <devices>, in order."""
    out = []
    for dev in parse(xml_text).find("devices"):
        if not isinstance(dev.tag, str):
            continue
        for addr in dev.iter("address"):
            out.append((device_key(dev), dict(addr.attrib)))
    return out


def macs(xml_text):
    return [m.get("address") for m in parse(xml_text).iterfind("devices/interface/mac")]


def machine(xml_text):
    return parse(xml_text).find("os/type").get("machine")


def metadata_c14n(xml_text):
    meta = parse(xml_text).find("metadata")
    return etree.tostring(meta, method="c14n") if meta is not None else None


def without_driver_modes(xml_text):
    """C14N of the document with every disk's <driver cache= io=> removed (the only planned edit)."""
    root = parse(xml_text)
    for driver in root.iterfind("devices/disk/driver"):
        driver.attrib.pop("cache", None)
        driver.attrib.pop("io", None)
    return etree.tostring(root, method="c14n")


# --- running a module ---------------------------------------------------------------------------

MODULES = "ansible_collections.virtfleet.libvirt.plugins.modules."


@dataclass
class ModuleRun:
    rc: int
    result: dict
    stdout: str
    stderr: str

    @property
    def failed(self):
        return self.rc != 0 or bool(self.result.get("failed"))

    @property
    def msg(self):
        return self.result.get("msg", "")

    def findings(self, **match):
        return [f for f in self.result.get("findings", []) if all(f.get(k) == v for k, v in match.items())]


def run_module(args, workdir, check=False, diff=False, module="virt_disk_io_policy", timeout=300, result_class=ModuleRun):
    """Run a collection module as ``python -m <module> args.json`` in ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    path = os.path.join(workdir, "args-%s.json" % uuid.uuid4().hex[:8])
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    # On a generation host: that host's /usr/bin/python3 inside its tree (workdir is shared).
    proc = subprocess.run(TARGET.python_argv(["-m", MODULES + module, path], cwd=workdir), capture_output=True,
                          text=True, env=TARGET.module_env(module_env()), cwd=workdir, timeout=timeout, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("%s printed no JSON (rc %d)\nstdout:\n%s\nstderr:\n%s"
                             % (module, proc.returncode, proc.stdout, proc.stderr))
    return result_class(proc.returncode, result, proc.stdout, proc.stderr)
