"""Behaviour probe of one hypervisor generation, run ON the host with that host's python3.

``ssh root@127.0.0.1 -p PORT python3 - < probe.py`` prints one JSON object: what this libvirt /
QEMU / Python accepts, refuses or changes for the shapes the collection meets (io/cache, VNC
passwords, VALIDATE, aliases, machine types, the libvirt constants and Python syntax the
collection's code uses; argv[1] is a directory of the collection's Python files to compile). docs/generations.md holds the results per generation and
tests/generations/test_differences.py checks them. Python 3.5+ syntax on purpose (it must run
everywhere); nothing here stays defined (domains are ``probe-*``, undefined at the end).
"""

import json
import os
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET

import libvirt

URI = "qemu:///system"
IMAGES = "/var/lib/libvirt/images"
libvirt.registerErrorHandler(lambda ctx, err: None, None)
conn = libvirt.open(URI)
out = {"python": platform.python_version()}


def disk(name, driver="", alias="", target="vda", bus="virtio", fmt="raw"):
    path = "%s/%s-%s.img" % (IMAGES, name, target)
    if not os.path.exists(path):
        with open(path, "wb") as handle:
            handle.truncate(16 << 20)
    return ("<disk type='file' device='disk'><driver name='qemu' type='%s'%s/><source file='%s'/>"
            "<target dev='%s' bus='%s'/>%s</disk>" % (fmt, driver, path, target, bus, alias))


def domain(name, devices="", machine="q35", extra=""):
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='%s'>hvm</type></os>%s<devices>%s</devices></domain>"
            % (name, machine, extra, devices))


def attempt(xml, flags=0):
    """define -> ('ok', inactive XML) or ('refused', 'code N: message'); undefines what it defined."""
    try:
        dom = conn.defineXMLFlags(xml, flags)
    except libvirt.libvirtError as exc:
        return "refused", "code %d: %s" % (exc.get_error_code(), exc.get_error_message())
    text = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    dom.undefine()
    return "ok", text


def start(xml):
    """define + start + destroy -> 'started' or the error."""
    try:
        dom = conn.defineXML(xml)
    except libvirt.libvirtError as exc:
        return "define refused: code %d: %s" % (exc.get_error_code(), exc.get_error_message())
    try:
        dom.create()
        dom.destroy()
        result = "started"
    except libvirt.libvirtError as exc:
        result = "start failed: code %d: %s" % (exc.get_error_code(), exc.get_error_message())
    dom.undefine()
    return result


for name in conn.listDefinedDomains():
    if name.startswith("probe-"):
        conn.lookupByName(name).undefine()

# io / cache combinations at define (with and without VALIDATE) and at start
io = {}
for label, drv in (("native+writeback", " cache='writeback' io='native'"), ("native+default", " io='native'"),
                   ("native+none", " cache='none' io='native'"), ("io_uring+writeback", " cache='writeback' io='io_uring'"),
                   ("threads+writeback", " cache='writeback' io='threads'")):
    status, detail = attempt(domain("probe-io", disk("probe-io", drv)))
    io[label] = {"define": status if status == "ok" else detail,
                 "start": start(domain("probe-io", disk("probe-io", drv))) if status == "ok" else None}
out["io"] = io

# VNC password longer than 8 characters
vnc = "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='%s'/>"
status, text = attempt(domain("probe-vnc", vnc % "elevenchars"))
out["vnc_password_11"] = text if status == "refused" else ("kept" if "passwd='elevenchars'" in text else "changed")
out["vnc_password_8"] = attempt(domain("probe-vnc", vnc % "eightchr"))[0]

# VALIDATE: an element the schema does not know, with and without the flag
bogus = domain("probe-val", "<bogus/>")
out["unknown_element"] = {"plain": attempt(bogus)[0], "validate": attempt(bogus, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)[1]
                          if attempt(bogus, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)[0] == "refused" else "ok"}

# user aliases: which survive a define, what a duplicate does
aliases = {}
for alias in ("ua-ok_1-2", "UA-upper", "ua-a.b", "foo-bar", "ua-"):
    status, text = attempt(domain("probe-al", disk("probe-al", alias="<alias name='%s'/>" % alias)))
    aliases[alias] = ("kept" if "<alias name='%s'/>" % alias in text else "dropped") if status == "ok" else text
out["aliases"] = aliases
dup = disk("probe-dup", alias="<alias name='ua-dup'/>") + disk("probe-dup", alias="<alias name='ua-dup'/>", target="vdb")
out["duplicate_alias"] = attempt(domain("probe-dup", dup))[1] if attempt(domain("probe-dup", dup))[0] == "refused" else "ok"

# machine types: what 'pc' and 'q35' expand to, everything offered, deprecated ones
caps = ET.fromstring(conn.getCapabilities())
machines, canonical, deprecated = [], {}, []
for guest in caps.findall("guest"):
    if guest.findtext("os_type") != "hvm" or guest.find("arch").get("name") != "x86_64":
        continue
    for m in guest.find("arch").findall("machine"):
        machines.append(m.text)
        if m.get("canonical"):
            canonical[m.text] = m.get("canonical")
        if m.get("deprecated") == "yes":
            deprecated.append(m.text)
out["machines"] = sorted(set(machines))
out["machine_aliases"] = canonical
out["machines_deprecated"] = sorted(set(deprecated))
dc = ET.fromstring(conn.getDomainCapabilities(None, "x86_64", None, "qemu"))
out["domcaps_default_machine"] = dc.findtext("machine")
out["domcaps_disk_buses"] = sorted(v.text for v in dc.findall("./devices/disk/enum[@name='bus']/value"))
for machine in ("q35", "pc"):
    status, text = attempt(domain("probe-m", machine=machine))
    out["expands_" + machine] = re.search(r"machine='([^']+)'", text).group(1) if status == "ok" else text

# a no-OS domain of each expanded machine type starts (TCG)
out["start_q35"] = start(domain("probe-s", disk("probe-s", " cache='none' io='native'")))

# machine types of the other generations, at define
cross = {}
for machine in ("pc-1.0", "pc-i440fx-1.4", "pc-i440fx-2.3", "pc-i440fx-2.4", "pc-q35-5.2", "pc-q35-7.2", "pc-q35-10.0"):
    status, text = attempt(domain("probe-x", machine=machine))
    cross[machine] = status if status == "ok" else text
out["define_machine"] = cross

# attributes and elements newer libvirt knows: kept, dropped silently, or refused (with and without VALIDATE)
newer = {
    "disk discard_no_unref": domain("probe-n", disk("probe-n", " discard_no_unref='on'", fmt="qcow2")),
    "interface backend passt": domain("probe-n", "<interface type='user'><backend type='passt'/><model type='virtio'/></interface>"),
    "disk driver queue_size": domain("probe-n", disk("probe-n", " queues='1' queue_size='256'")),
    "disk throttlefilters": domain("probe-n", disk("probe-n").replace(
        "</disk>", "<throttlefilters><throttlefilter group='g1'/></throttlefilters></disk>"), extra=(
        "<throttlegroups><throttlegroup><total_iops_sec>1000</total_iops_sec><group_name>g1</group_name>"
        "</throttlegroup></throttlegroups>")),
}
marks = {"disk discard_no_unref": "discard_no_unref", "interface backend passt": "passt",
         "disk driver queue_size": "queue_size", "disk throttlefilters": "throttlefilter"}
result = {}
for label, xml in newer.items():
    plain, text = attempt(xml)
    plain = ("kept" if marks[label] in text else "dropped silently") if plain == "ok" else text
    valid, vtext = attempt(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    valid = ("kept" if marks[label] in vtext else "dropped silently") if valid == "ok" else vtext.splitlines()[0]
    result[label] = {"define": plain, "define_validate": valid}
out["newer_features"] = result


def unplug(alias):
    """Hot-unplug without a guest OS, from a q35 domain ('q35' as this QEMU expands it)."""
    xml = domain("probe-u", "<controller type='scsi' model='virtio-scsi'/>"
                 + disk("probe-u", alias="<alias name='ua-u-sda'/>", target="sda", bus="scsi")
                 + disk("probe-u", alias="<alias name='ua-u-vdb'/>", target="vdb"))
    dom = conn.defineXML(xml)
    try:
        dom.create()
        t0 = time.time()
        dom.detachDeviceAlias(alias, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        while time.time() - t0 < 3:
            if "<alias name='%s'/>" % alias not in dom.XMLDesc(0):
                return "removed after %.2f s" % (time.time() - t0)
            time.sleep(0.01)
        return "still present after 3 s"
    except libvirt.libvirtError as exc:
        return "code %d: %s" % (exc.get_error_code(), exc.get_error_message())
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


out["unplug_scsi_no_guest"] = unplug("ua-u-sda")
out["unplug_virtio_blk_no_guest_q35"] = unplug("ua-u-vdb")

# domain capabilities: every enum, to compare generations
enums = {}
for node in dc.iter("enum"):
    parent = [p for p in dc.iter() if node in list(p)][0]
    enums["%s/%s" % (parent.tag, node.get("name"))] = sorted(v.text for v in node.findall("value"))
out["domcaps_enums"] = enums
out["domcaps_features"] = sorted(f.tag + ("=" + f.get("supported") if f.get("supported") else "") for f in dc.find("features"))


# the libvirt API the collection uses
names = ("VIR_DOMAIN_DEFINE_VALIDATE", "VIR_DOMAIN_XML_SECURE", "VIR_DOMAIN_XML_INACTIVE", "VIR_ERR_NO_DOMAIN",
         "VIR_ERR_DEVICE_MISSING", "VIR_ERR_INVALID_ARG", "VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED",
         "VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED", "VIR_DOMAIN_AFFECT_LIVE", "VIR_DOMAIN_AFFECT_CONFIG",
         "VIR_CONNECT_LIST_DOMAINS_TRANSIENT", "VIR_CONNECT_LIST_DOMAINS_INACTIVE")
out["missing_constants"] = [n for n in names if not hasattr(libvirt, n)]
out["missing_methods"] = [n for n in ("defineXMLFlags", "detachDeviceAlias", "detachDeviceFlags", "listAllDomains",
                                      "registerCloseCallback", "domainEventRegisterAny")
                          if not (hasattr(libvirt.virConnect, n) or hasattr(libvirt.virDomain, n))]

# the collection's Python files (a copy under argv[1], inside this host's tree), compiled by this Python
bad, compiled = {}, 0
for top in sys.argv[1:]:
    for base, _dirs, files in os.walk(top):
        for fname in sorted(files):
            if fname.endswith(".py"):
                path = os.path.join(base, fname)
                with open(path) as handle:
                    text = handle.read()
                compiled += 1
                try:
                    compile(text, path, "exec")
                except SyntaxError as exc:
                    bad[os.path.relpath(path, top)] = "line %s: %s" % (exc.lineno, exc.msg)
out["syntax_errors"] = bad
out["compiled"] = compiled

daemon = conn.getLibVersion()
out["libvirt"] = "%d.%d.%d" % (daemon // 1000000, daemon // 1000 % 1000, daemon % 1000)
json.dump(out, sys.stdout, sort_keys=True)
sys.stdout.write("\n")
