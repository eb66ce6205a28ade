# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upgrade readiness and machine-type hygiene: will a domain start on a target, and why not (private, pure).

The target is a capability snapshot (:mod:`_capabilities`): another host, the same host after a
package upgrade, or the host itself read live. Nothing here changes anything; every finding is
report-only (status ``blocked`` for a domain that would not start, ``skipped`` for advice).

What decides a start, and where each fact comes from (docs/upgrade-readiness.md has the table):
- the arch, virt type (``kvm`` needs /dev/kvm), emulator and machine type, from ``capabilities``;
  ``pc``/``q35`` in a definition resolve to the target's newest;
- device models, buses, graphics and video types, CPU modes and models, firmware, memory
  backing and features, from ``domcapabilities`` of the machine's family. A value is refused
  only where the target's libvirt enumerates that setting and leaves the value out: a setting
  it does not enumerate (older libvirt reports fewer) is not guessed at;
- what libvirt itself validates whatever QEMU offers: VNC passwords longer than 8 characters
  (libvirt >= 8.0), ``io='native'`` without a direct cache mode (every supported release);
- XML a target's libvirt does not know yet (it refuses it with VALIDATE and drops it without).
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _capabilities, _domxml, _plan, _vocab

# VNC passwords longer than 8 characters: accepted by libvirt 7.0 (measured, Debian 11), refused at
# every define and start by 9.0 and 11.3 (measured, Debian 12/13, code 67 "VNC password is N characters
# long, only 8 permitted") and reported for Ubuntu 22.04's 8.0. The releases between 7.0 and 8.0 are not
# measured: targets there are treated as accepting.
VNC_PASSWORD_MAX = 8
VNC_PASSWORD_REFUSED_SINCE = (8, 0, 0)

# XML the target's libvirt must know: (what, since, xpath relative to the domain, and None, an attribute the
# element must carry, or a test of the element).
# Measured on the generation fleet (docs/generations.md row 5): 7.0 drops all four without VALIDATE and refuses
# them (code 92) with it; 9.0 keeps queue_size and refuses or drops the others (passt: code 27 even without
# VALIDATE); 11.3 keeps all. "since" from libvirt's formatdomain "Since" marks and release tags: queue_size
# 7.8.0, discard_no_unref 9.5.0, throttlefilters 11.1.0; passt is documented "since 9.0.0" but Debian 12's
# 9.0.0 refuses it (measured; libvirt issue #462), so the first release after it, 9.1.0, is used.
NEWER_XML = (
    ("disk driver queue_size", (7, 8, 0), "devices/disk/driver", "queue_size"),
    ("disk driver discard_no_unref", (9, 5, 0), "devices/disk/driver", "discard_no_unref"),
    ("interface backend type='passt'", (9, 1, 0), "devices/interface/backend[@type='passt']", None),
    ("disk throttlefilters", (11, 1, 0), "devices/disk/throttlefilters", None),
    # Written by libvirt itself, so every definition a newer host stored carries them (the confusion
    # matrix found both): 7.2.0 gave <audio> its QEMU backends and adds <audio id='1' type='none'/> to
    # every QEMU domain (7.0's schema knows only type='oss': measured, code 92 with VALIDATE); 9.1.0 added
    # the 'itco' watchdog model and adds it to every q35 domain (9.0's schema lacks it: measured).
    ("audio backend of a type other than 'oss'", (7, 2, 0), "devices/audio", lambda el: el.get("type") != "oss"),
    ("watchdog model='itco'", (9, 1, 0), "devices/watchdog[@model='itco']", None),
)

# Settings checked against domcapabilities enums: (device kind, what, how to read the value, enum name).
# Only values libvirt enumerates for that kind; a domain value outside a listed enum does not start.
_DEVICE_ENUMS = {
    "disk": (("device", lambda el: el.get("device", "disk"), "diskDevice"),
             ("bus", lambda el: _domxml.attr(el, "target", "bus"), "bus"),
             ("model", lambda el: el.get("model"), "model")),
    "graphics": (("type", lambda el: el.get("type"), "type"),),
    "video": (("model", lambda el: _domxml.attr(el, "model", "type"), "modelType"),),
    "hostdev": (("mode", lambda el: el.get("mode", "subsystem"), "mode"),
                ("type", lambda el: el.get("type") if el.get("type") in ("usb", "pci", "scsi") else None,
                 "subsysType")),
    "rng": (("model", lambda el: el.get("model"), "model"),
            ("backend", lambda el: _domxml.attr(el, "backend", "model"), "backendModel")),
    "filesystem": (("driver", lambda el: _domxml.attr(el, "driver", "type"), "driverType"),),
    "tpm": (("model", lambda el: el.get("model"), "model"),
            ("backend", lambda el: _domxml.attr(el, "backend", "type"), "backendModel"),
            ("backend version", lambda el: _domxml.attr(el, "backend", "version"), "backendVersion")),
    "redirdev": (("bus", lambda el: el.get("bus"), "bus"),),
    "channel": (("type", lambda el: el.get("type"), "type"),),
    "crypto": (("model", lambda el: el.get("model"), "model"),
               ("type", lambda el: el.get("type"), "type"),
               ("backend", lambda el: _domxml.attr(el, "backend", "model"), "backendModel")),
    "interface": (("backend", lambda el: _domxml.attr(el, "backend", "type"), "backendType"),),
    "panic": (("model", lambda el: el.get("model"), "model"),),
    "console": (("type", lambda el: el.get("type"), "type"),),
}

# Remedies a person can act on, by what is missing.
_PACKAGE_HINTS = {
    ("graphics", "spice"): "install qemu-system-modules-spice on the target (Debian 13 moved SPICE there; it is only a "
                           "Recommends of qemu-system-x86), or switch the domain to VNC",
    ("video", "qxl"): "install qemu-system-modules-spice on the target (qxl is in the SPICE modules on Debian 13), or "
                      "switch the video model to virtio or vga",
    ("channel", "spicevmc"): "install qemu-system-modules-spice on the target, or remove the spicevmc channel",
    ("redirdev", "spicevmc"): "install qemu-system-modules-spice on the target, or remove the USB redirection",
}
# Features of <features> whose absence from the target's QEMU makes libvirt refuse the start.
_FEATURES = ("vmcoreinfo", "async-teardown", "ps2", "gic")


def _ident(el, path):
    return {k: v for k, v in _domxml.identity(el, path).items() if v is not None}


def _reason(code, device, message):
    return {"code": code, "device": device, "message": message}


def all_devices(root):
    """[(path, element)] of EVERY child element of <devices> (graphics and video included, which
    cannot carry an alias and so are not among ``_domxml.devices``' default kinds)."""
    return _domxml.devices(root, kinds=None)


def long_vnc_passwords(root):
    """[(path, element, length)] of VNC graphics whose passwd is longer than libvirt >= 8.0 accepts."""
    out = []
    for path, el in _domxml.devices(root, kinds=("graphics",)):
        if el.get("type") == "vnc":
            passwd = el.get("passwd")
            if passwd is not None and len(passwd) > VNC_PASSWORD_MAX:
                out.append((path, el, len(passwd)))
    return out


def vnc_remedy(length):
    return ("libvirt >= 8.0 refuses VNC passwords longer than %d characters at every define and start (QEMU's VNC "
            "authentication uses only the first 8); this one has %d. Shorten it to at most 8 characters "
            "(virsh edit, or virsh update-device --config with the graphics element), then rerun" % (
                VNC_PASSWORD_MAX, length))


def define_blockers(state, libvirt_version):
    """Reasons libvirt ``libvirt_version`` refuses this definition at any define: [(device, message)]."""
    if tuple(libvirt_version) < VNC_PASSWORD_REFUSED_SINCE or "passwd=" not in state.inactive_xml:
        return []   # the text test first: most definitions carry no password at all (the audit stays fast)
    return [(_ident(el, path), "graphics vnc: " + vnc_remedy(length))
            for path, el, length in long_vnc_passwords(state.inactive_root())]


def _version_text(version):
    return ".".join(str(p) for p in version)


def check_domain(root, target):
    """Every reason the domain (its inactive definition) would not start on ``target`` (a Target)."""
    reasons = []
    os_type_el = root.find("os/type")
    arch = os_type_el.get("arch") if os_type_el is not None else None
    arch = arch or target.snapshot.get("host_arch")
    os_type = (os_type_el.text or "hvm").strip() if os_type_el is not None else "hvm"
    machine = os_type_el.get("machine") if os_type_el is not None else None
    virttype = root.get("type") or "qemu"
    os_dev = {"kind": "os", "path": "/domain/os/type"}
    where = target.label
    guests = target.guests_for(arch, os_type)
    if not guests:
        offered = sorted({g.get("arch") for g in target.guests if g.get("arch")})
        reasons.append(_reason("arch_not_offered", os_dev, (
            "architecture %s (%s) is not offered by %s (it offers %s): install the QEMU system emulator for %s "
            "there (e.g. qemu-system-*), or keep the domain on a host that has it" % (
                arch, os_type, where, ", ".join(offered) or "none", arch))))
        return reasons
    domain_types = sorted({t for g in guests for t in g.get("domain_types") or ()})
    if virttype not in domain_types:
        fix = ("/dev/kvm is missing or not usable there: enable virtualisation in the firmware and load the kvm "
               "modules, or set <domain type='qemu'> (TCG, much slower)" if virttype == "kvm" else
               "use one of the offered types")
        reasons.append(_reason("virt_type_not_offered", {"kind": "domain", "path": "/domain"}, (
            "domain type %s is not offered by %s for %s (offered: %s): %s" % (
                virttype, where, arch, ", ".join(domain_types) or "none", fix))))
    emulator = _domxml.text(root, "devices/emulator")
    emulators = target.emulators(arch, os_type)
    if emulator and emulator not in emulators:
        reasons.append(_reason("emulator_not_offered", {"kind": "emulator", "path": "/domain/devices/emulator"}, (
            "emulator %s is not among the emulators %s lists for %s (%s): set <emulator> to one of them" % (
                emulator, where, arch, ", ".join(emulators) or "none"))))
    resolved = None
    if machine:
        resolved = target.resolve(arch, machine, os_type)
        if resolved is None:
            family = _capabilities.machine_family(machine)
            newest = target.newest_of_family(arch, family, os_type)
            older = newest is not None and (_capabilities.machine_version(machine) or ()) < (
                _capabilities.machine_version(newest) or ())
            if newest is None:
                fix = "no machine type of the %s family is offered there; choose one of its machine types" % family
            elif older:
                fix = ("its QEMU dropped this old type; before the upgrade change the machine type to one the target "
                       "offers, e.g. %s (the guest sees new virtual hardware: schedule a cold boot and test the "
                       "guest), or keep the domain on a host whose QEMU still offers it" % newest)
            else:
                fix = ("the type is newer than the target's QEMU (the newest there is %s): keep the domain on a host "
                       "with a newer QEMU, or change the machine type to %s or older" % (newest, newest))
            reasons.append(_reason("machine_type_not_offered", dict(os_dev, machine=machine), (
                "machine type %s is not offered by %s: %s" % (machine, where, fix))))
    # A domain type the target lacks is reported above; its devices are still checked against what it offers.
    caps_type = virttype if virttype in domain_types or not domain_types else domain_types[0]
    entry, _exact = target.domain_caps(arch, caps_type, resolved or machine)
    if resolved is not None:
        _names, _aliases, _dep, max_cpus = target.machines(arch, os_type)
        vcpus = _int(_domxml.text(root, "vcpu"))
        limit = max_cpus.get(resolved)
        if vcpus and limit and vcpus > limit:
            reasons.append(_reason("vcpus_over_machine_limit", {"kind": "vcpu", "path": "/domain/vcpu"}, (
                "%d vCPUs exceed the %d that machine type %s allows on %s: lower <vcpu>, or choose a machine "
                "type with a higher limit (q35)" % (vcpus, limit, resolved, where))))
    if entry is not None:
        reasons.extend(_check_domcaps(root, entry, where))
    reasons.extend(_check_libvirt(root, target))
    return reasons


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _listed(values):
    return ", ".join(values) if values else "none"


def _check_domcaps(root, entry, where):
    out = []
    devices = entry.get("devices") or {}
    for path, el in all_devices(root):
        rules = _DEVICE_ENUMS.get(el.tag)
        caps = devices.get(el.tag)
        if not rules or caps is None:
            continue
        if caps.get("supported") is False:
            out.append(_reason("device_not_offered", _ident(el, path), (
                "%s devices are not offered by %s for machine %s: remove the device, or use a target whose QEMU "
                "has it" % (el.tag, where, entry.get("machine")))))
            continue
        for what, read, enum in rules:
            value = read(el)
            allowed = caps.get(enum)
            if value is None or not allowed or value in allowed:
                continue
            hint = _PACKAGE_HINTS.get((el.tag, value)) or "change it to one the target offers (%s)" % _listed(allowed)
            code = "bus_not_offered" if what == "bus" else "device_model_not_offered"
            out.append(_reason(code, _ident(el, path), (
                "%s %s %s is not offered by %s (offered: %s): %s" % (
                    el.tag, what, value, where, _listed(allowed), hint))))
        if el.tag == "redirdev" and el.get("type") == "spicevmc":
            # A SPICE USB redirection needs the spicevmc channel type, which domcapabilities lists under <channel>.
            channels = (devices.get("channel") or {}).get("type")
            if channels and "spicevmc" not in channels:
                out.append(_reason("device_model_not_offered", _ident(el, path), (
                    "redirdev type spicevmc is not offered by %s (channel types offered: %s): %s" % (
                        where, _listed(channels), _PACKAGE_HINTS[("redirdev", "spicevmc")]))))
    out.extend(_check_cpu(root, entry, where))
    out.extend(_check_os(root, entry, where))
    out.extend(_check_features(root, entry, where))
    return out


def _check_cpu(root, entry, where):
    cpu = root.find("cpu")
    caps = entry.get("cpu") or {}
    if cpu is None or not caps:
        return []
    dev = {"kind": "cpu", "path": "/domain/cpu"}
    model = _domxml.text(cpu, "model")
    mode = cpu.get("mode") or ("custom" if model else None)
    modes = caps.get("modes") or {}
    if mode and modes and modes.get(mode) is not True:
        state = "not supported" if mode in modes else "unknown"
        return [_reason("cpu_mode_not_offered", dict(dev, mode=mode), (
            "CPU mode %s is %s on %s for %s (supported: %s): use host-model or a custom model the target lists" % (
                mode, state, where, entry.get("virttype"), _listed(sorted(m for m, ok in modes.items() if ok)))))]
    models = caps.get("models") or {}
    if mode != "custom" or not model or not models:
        return []
    # Measured on QEMU 5.2 / 7.2 / 10.0 (TCG): a model QEMU does not know fails the start whatever the
    # fallback ("Unknown CPU model"); a known model the target cannot run (usable='no') starts unless
    # check='full' ("guest CPU doesn't match specification").
    if model not in models:
        return [_reason("cpu_model_not_offered", dict(dev, model=model), (
            "CPU model %s is not known to %s for %s (QEMU refuses to start it): choose a model it lists, or "
            "host-model" % (model, where, entry.get("virttype"))))]
    if cpu.get("check") == "full" and models.get(model) == "no":
        return [_reason("cpu_model_not_usable", dict(dev, model=model), (
            "CPU model %s with check='full' cannot run on %s (usable='no' for %s: the host lacks some of its "
            "features): use check='partial' or 'none', another model, or host-model" % (
                model, where, entry.get("virttype"))))]
    return []


def _check_os(root, entry, where):
    out = []
    os_caps = entry.get("os") or {}
    firmware = root.find("os").get("firmware") if root.find("os") is not None else None
    offered = os_caps.get("firmware")
    # An empty firmware enum is "no firmware descriptor found" (measured: efi fails to define or start there).
    if firmware and offered is not None and firmware not in offered:
        out.append(_reason("firmware_not_offered", {"kind": "os", "path": "/domain/os", "firmware": firmware}, (
            "firmware %s is not offered by %s (offered: %s): install the firmware package there (ovmf for efi)" % (
                firmware, where, _listed(offered)))))
    if firmware == "efi" and entry.get("arch") in ("x86_64", "i686") and root.find("features/acpi") is None:
        out.append(_reason("firmware_needs_acpi", {"kind": "os", "path": "/domain/os", "firmware": firmware}, (
            "UEFI requires ACPI on %s (libvirt refuses it): add <acpi/> to <features>" % entry.get("arch"))))
    loader = root.find("os/loader")
    types = (os_caps.get("loader") or {}).get("type")
    if loader is not None and loader.get("type") and types and loader.get("type") not in types:
        out.append(_reason("loader_type_not_offered", {"kind": "loader", "path": "/domain/os/loader"}, (
            "loader type %s is not offered by %s (offered: %s)" % (loader.get("type"), where, _listed(types)))))
    source = root.find("memoryBacking/source")
    kinds = (entry.get("memory_backing") or {}).get("sourceType")
    if source is not None and source.get("type") and kinds and source.get("type") not in kinds:
        out.append(_reason("memory_backing_not_offered", {"kind": "memoryBacking", "path": "/domain/memoryBacking"}, (
            "memory backing source %s is not offered by %s (offered: %s)" % (
                source.get("type"), where, _listed(kinds)))))
    return out


def _check_features(root, entry, where):
    out = []
    feats = entry.get("features") or {}
    features = root.find("features")
    for el in (features if features is not None else ()):
        if not isinstance(el.tag, str) or el.tag not in _FEATURES:
            continue
        if el.get("state") == "off" or el.get("enabled") == "no":
            continue
        supported = feats.get(el.tag)
        supported = supported.get("supported") if isinstance(supported, dict) else supported
        if supported is False:
            out.append(_reason("feature_not_offered", {"kind": "feature", "path": "/domain/features/" + el.tag}, (
                "feature %s is not supported by %s for machine %s: remove <%s/> from <features>" % (
                    el.tag, where, entry.get("machine"), el.tag))))
    for tag, feature in (("genid", "genid"),):
        if root.find(tag) is not None and feats.get(feature) is False:
            out.append(_reason("feature_not_offered", {"kind": tag, "path": "/domain/" + tag}, (
                "%s is not supported by %s: remove <%s>" % (tag, where, tag))))
    security = root.find("launchSecurity")
    if security is not None and security.get("type") in ("sev", "sev-snp", "s390-pv", "tdx"):
        kind = security.get("type")
        supported = feats.get("sev" if kind.startswith("sev") else kind)
        supported = supported.get("supported") if isinstance(supported, dict) else supported
        if supported is not True:
            out.append(_reason("feature_not_offered", {"kind": "launchSecurity", "path": "/domain/launchSecurity"}, (
                "launch security %s is not supported by %s: remove <launchSecurity> or use a host that has it" % (
                    kind, where))))
    return out


_SPICE_CHARDEVS = ("spicevmc", "spiceport")
# A spicevmc/spiceport character device without SPICE graphics: accepted by libvirt 7.0, refused at define
# by 9.0 and 11.3 ("chardev 'spicevmc' not supported without spice graphics"; measured). 7.1-8.x not measured.
SPICE_CHARDEV_REFUSED_SINCE = (9, 0, 0)
_HELPER_HINTS = {"passt": "install the passt package on the target", "swtpm": "install swtpm and swtpm-tools on the target"}


def _check_libvirt(root, target):
    """What the target's libvirt itself refuses, whatever its QEMU offers."""
    out = []
    where = target.label
    devices = all_devices(root)
    has_spice = target.libvirt < SPICE_CHARDEV_REFUSED_SINCE or any(
        el.tag == "graphics" and el.get("type") == "spice" for _p, el in devices)
    for path, el in devices:
        if el.tag in ("redirdev", "channel", "smartcard", "serial", "console") and el.get("type") in _SPICE_CHARDEVS \
                and not has_spice:
            out.append(_reason("spice_chardev_without_spice", _ident(el, path), (
                "%s type %s needs a SPICE graphics device in the domain (libvirt refuses it without): add "
                "<graphics type='spice'> or remove the %s" % (el.tag, el.get("type"), el.tag))))
        helper = ("passt" if el.tag == "interface" and _domxml.attr(el, "backend", "type") == "passt" else
                  "swtpm" if el.tag == "tpm" and _domxml.attr(el, "backend", "type") == "emulator" else None)
        if helper and target.helpers.get(helper) is False:
            out.append(_reason("helper_not_installed", _ident(el, path), (
                "%s needs the %s program, which %s does not have (libvirt looks it up at start): %s" % (
                    _vocab.device_label(_ident(el, path)), helper, where, _HELPER_HINTS[helper]))))
    if target.libvirt >= VNC_PASSWORD_REFUSED_SINCE and target.hypervisor == "QEMU":
        for path, el, length in long_vnc_passwords(root):
            out.append(_reason("vnc_password_too_long", _ident(el, path), "on %s: %s" % (where, vnc_remedy(length))))
    for path, el in devices:
        if el.tag != "disk":
            continue
        driver = el.find("driver")
        if driver is not None and driver.get("io") == "native" and driver.get("cache", "default") not in (
                "none", "directsync"):
            out.append(_reason("io_native_needs_direct_cache", _ident(el, path), (
                "disk io='native' with cache=%s is refused at start by every supported libvirt: run the disk_io "
                "rule (it sets io='threads'), or set cache='none'" % driver.get("cache", "default"))))
    for what, since, xpath, attribute in NEWER_XML:
        if target.libvirt >= since:
            continue
        for el in root.findall(xpath):
            if callable(attribute) and not attribute(el) or isinstance(attribute, str) and el.get(attribute) is None:
                continue
            dev_el = el
            while dev_el is not None and dev_el.getparent() is not None and dev_el.getparent().tag != "devices":
                dev_el = dev_el.getparent()
            device = _ident(dev_el, dev_el.getroottree().getpath(dev_el)) if dev_el is not None else {}
            out.append(_reason("xml_not_understood", device, (
                "%s needs libvirt >= %s; %s refuses it when defined with validation and drops it silently "
                "without: remove it from the definition before moving it there, or upgrade the target" % (
                    what, _version_text(since), where))))
    return out


# --- machine-type hygiene -------------------------------------------------------------------

def machine_of(root):
    el = root.find("os/type")
    return (el.get("arch"), el.get("machine")) if el is not None else (None, None)


def group_norms(machines):
    """{(arch, family): (usual machine, count, total)} from [(arch, machine)] of one host's domains.

    The usual machine is the most common one of the family; on a tie the newest.
    """
    groups = {}
    for arch, machine in machines:
        if not machine or _capabilities.machine_version(machine) is None:
            continue
        groups.setdefault((arch, _capabilities.machine_family(machine)), []).append(machine)
    norms = {}
    for key, names in groups.items():
        counts = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        usual = max(counts, key=lambda n: (counts[n], _capabilities.machine_version(n)))
        norms[key] = (usual, counts[usual], len(names))
    return norms


def check_machine_type(root, target, norms):
    """Machine-type hygiene findings of one domain: [(code, status, message)]."""
    arch, machine = machine_of(root)
    if not machine:
        return []
    arch = arch or target.snapshot.get("host_arch")
    out = []
    names, aliases, deprecated, _max = target.machines(arch)
    resolved = aliases.get(machine, machine)
    family = _capabilities.machine_family(resolved)
    newest = target.newest_of_family(arch, family)
    if names and resolved not in names:
        out.append(("machine-type-not-offered", _vocab.BLOCKED, (
            "machine type %s is not offered by %s; the domain will not start there. Change it to a type the "
            "target offers%s at a planned cold boot (a guest ABI change: test the guest)" % (
                machine, target.label, " (newest of the family: %s)" % newest if newest else ""))))
    elif resolved in deprecated:
        out.append(("machine-type-deprecated", _vocab.SKIPPED, (
            "machine type %s is deprecated by the QEMU of %s and goes away in a later QEMU; it still starts. Plan "
            "a move to %s at the next cold boot (virsh edit: <type machine='%s'>; the guest sees new virtual "
            "hardware: test it first). Not changed by virtfleet" % (
                resolved, target.label, newest or "a current type", newest or "..."))))
    norm = norms.get((arch, family)) if norms else None
    if norm and resolved != norm[0] and norm[2] > 1:
        usual, count, total = norm
        older = (_capabilities.machine_version(resolved) or ()) < (_capabilities.machine_version(usual) or ())
        out.append(("machine-type-differs", _vocab.SKIPPED, (
            "machine type %s differs from the rest of its family on this host (%d of %d %s domains use %s)%s. "
            "Not changed by virtfleet" % (
                resolved, count, total, family, usual,
                "; it is older: move it to %s at a planned cold boot (a guest ABI change: test the guest), or "
                "record why it must stay" % usual if older else
                "; it is newer: fine where the host's QEMU offers it, but it pins the domain to hosts with a QEMU "
                "at least that new (migration, restore)"))))
    return out


def changes(state, check, reasons):
    """The report-only Change list of one domain's readiness reasons (status ``blocked``)."""
    return [_plan.Change(domain=state.name, uuid=state.uuid, device=r["device"], rule=r["code"],
                         current={}, desired={}, message="%s: %s" % (state.name, r["message"]),
                         status=_vocab.BLOCKED, check=check) for r in reasons]
