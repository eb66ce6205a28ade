# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capability snapshots: what a host's libvirt and QEMU offer, as small versioned plain data (private).

A snapshot is what ``virConnectGetCapabilities`` and ``virConnectGetDomainCapabilities`` say that
decides whether a domain starts: per emulator and architecture the machine types (with the
aliases ``pc``/``q35`` and the ``deprecated`` flag), and per arch + virt type + machine family the
device models, buses, graphics and video types, features, CPU modes and models. The schema is
documented in docs/capability-snapshot.md; ``virtfleet_snapshot`` is its version.

Pure logic except :func:`take`, which reads through the adapter it is given (the one place
that talks to libvirt); no libvirt import here.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest

SCHEMA_VERSION = 1
KEY = "virtfleet_snapshot"

# Device kinds of <domainCapabilities><devices> and <features> children kept as they are (every
# enum they carry). Anything libvirt adds later is kept too: the parser is generic.
_VERSION = re.compile(r"^(?P<family>.+?)-(?P<version>\d+\.\d+(?:\.\d+)?)$")


def _yes(value):
    return value == "yes"


def _enums(el):
    """{enum name: [values]} of an element's direct <enum> children."""
    return {enum.get("name"): [v.text.strip() for v in enum.findall("value") if v.text]
            for enum in el.findall("enum")}


def _element(el):
    """A <devices>/<features>/<os> child as data: ``supported`` plus its enums (and sub-elements with ``supported``)."""
    out = {"supported": _yes(el.get("supported"))} if el.get("supported") is not None else {}
    out.update(_enums(el))
    values = [v.text.strip() for v in el.findall("value") if v.text]
    if values:
        out["values"] = values
    for child in el:
        if isinstance(child.tag, str) and child.tag not in ("enum", "value") and child.get("supported") is not None:
            out[child.tag] = _element(child)
    return out


# --- parsing -------------------------------------------------------------------------------

def parse_capabilities(xml_text):
    """``virsh capabilities`` as data: ``{"host_arch", "guests": [...]}``.

    A guest is one (os type, arch, emulator): its domain types, machine types, aliases
    (``pc`` -> ``pc-i440fx-7.2``), deprecated machine types and each machine's ``maxCpus``.
    """
    root = _domxml.parse(xml_text, "capabilities")
    host_arch = _domxml.text(root, "host/cpu/arch")
    guests = []
    for guest in root.findall("guest"):
        arch_el = guest.find("arch")
        if arch_el is None:
            continue
        machines, aliases, deprecated, max_cpus = [], {}, [], {}
        # Machine types are listed under <arch> and, when a virt type has its own emulator, under <domain>.
        for machine in arch_el.findall("machine") + arch_el.findall("domain/machine"):
            name = (machine.text or "").strip()
            if not name:
                continue
            canonical = machine.get("canonical")
            if canonical:
                aliases[name] = canonical
                continue
            if name not in machines:
                machines.append(name)
            if _yes(machine.get("deprecated")) and name not in deprecated:
                deprecated.append(name)
            if machine.get("maxCpus"):
                max_cpus[name] = int(machine.get("maxCpus"))
        emulator = _domxml.text(arch_el, "emulator")
        guests.append({
            "os_type": _domxml.text(guest, "os_type") or "hvm",
            "arch": arch_el.get("name"),
            "emulator": emulator,
            "emulators": sorted({e for e in [emulator] + [_domxml.text(d, "emulator") for d in arch_el.findall("domain")]
                                 if e}),
            "domain_types": [d.get("type") for d in arch_el.findall("domain") if d.get("type")],
            "machines": sorted(machines, key=machine_sort_key),
            "aliases": dict(sorted(aliases.items())),
            "deprecated": sorted(deprecated, key=machine_sort_key),
            "max_cpus": max_cpus,
        })
    return {"host_arch": host_arch, "guests": guests}


def parse_domain_capabilities(xml_text):
    """``virsh domcapabilities`` for one emulator/arch/machine/virt type as data (every enum kept)."""
    root = _domxml.parse(xml_text, "domainCapabilities")
    vcpu = root.find("vcpu")
    out = {
        "emulator": _domxml.text(root, "path"),
        "virttype": _domxml.text(root, "domain"),
        "machine": _domxml.text(root, "machine"),
        "arch": _domxml.text(root, "arch"),
        "vcpu_max": int(vcpu.get("max")) if vcpu is not None and vcpu.get("max") else None,
    }
    os_el = root.find("os")
    if os_el is not None:
        out["os"] = _element(os_el)
    cpu = root.find("cpu")
    if cpu is not None:
        modes, models = {}, {}
        host_model = None
        for mode in cpu.findall("mode"):
            modes[mode.get("name")] = _yes(mode.get("supported"))
            if mode.get("name") == "host-model":
                host_model = _domxml.text(mode, "model")
            if mode.get("name") == "custom":
                for model in mode.findall("model"):
                    if model.text:
                        models[model.text.strip()] = model.get("usable", "unknown")
        out["cpu"] = {"modes": modes, "host_model": host_model, "models": models}
    mem = root.find("memoryBacking")
    if mem is not None:
        out["memory_backing"] = _element(mem)
    devices = root.find("devices")
    out["devices"] = {} if devices is None else {
        el.tag: _element(el) for el in devices if isinstance(el.tag, str)}
    features = root.find("features")
    feats = {}
    for el in (features if features is not None else ()):
        if not isinstance(el.tag, str):
            continue
        data = _element(el)
        feats[el.tag] = data["supported"] if list(data) == ["supported"] else data
    out["features"] = feats
    return out


# --- machine types -------------------------------------------------------------------------

def machine_family(name):
    """``pc-q35-7.2`` -> ``pc-q35``; ``pc-1.3`` and ``pc-i440fx-2.0`` -> ``pc-i440fx``; others as they are."""
    m = _VERSION.match(name or "")
    family = m.group("family") if m else name
    return "pc-i440fx" if family == "pc" else family


def machine_version(name):
    """The version of a versioned machine type as a tuple (``pc-q35-4.0.1`` -> (4, 0, 1)), else None."""
    m = _VERSION.match(name or "")
    return tuple(int(p) for p in m.group("version").split(".")) if m else None


def machine_sort_key(name):
    return (machine_family(name), machine_version(name) or (), name)


# --- taking a snapshot ---------------------------------------------------------------------

# Helper programs libvirt's QEMU driver runs for some devices, looked up in PATH at start (virFindFileInPath);
# domain capabilities list the backend whether the program is installed or not (measured: passt on Debian 13).
HELPERS = {"passt": "passt", "swtpm": "swtpm"}
HELPER_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_helpers(path=HELPER_PATH):
    """{helper: installed} on THIS machine (run where libvirtd runs: the module on the managed host)."""
    return {name: any(os.access(os.path.join(d, program), os.X_OK) for d in path)
            for name, program in HELPERS.items()}


def _version_text(version):
    return ".".join(str(p) for p in version)


def build(caps, domcaps, versions, host, uri, taken_at, helpers=None):
    """The snapshot dict from parsed capabilities, parsed domain capabilities and the host's versions."""
    lib, hv_type, hv = versions
    snapshot = {
        KEY: SCHEMA_VERSION,
        "taken_at": taken_at,
        "host": host,
        "uri": uri,
        "versions": {"libvirt": _version_text(lib), "hypervisor": hv_type,
                     "qemu" if hv_type == "QEMU" else "hypervisor_version": _version_text(hv)},
        "host_arch": caps["host_arch"],
        "guests": caps["guests"],
        "domain_capabilities": domcaps,
    }
    if helpers is not None:
        snapshot["helpers"] = dict(helpers)
    return snapshot


def queries(caps, arches=None):
    """The (emulator, arch, machine, virttype) combinations a snapshot asks domain capabilities for.

    Per hvm guest and virt type: libvirt's default machine (None) and the canonical machine of every
    alias (``pc``, ``q35``): domain capabilities differ by machine family, not by version.
    """
    out = []
    for guest in caps["guests"]:
        if guest["os_type"] != "hvm" or (arches and guest["arch"] not in arches):
            continue
        for virttype in guest["domain_types"]:
            for machine in [None] + sorted(set(guest["aliases"].values())):
                out.append((guest["emulator"], guest["arch"], machine, virttype))
    return out


def take(adapter, arches=None, uri=None, now=None, name=None, helpers=None):
    """A snapshot of the host behind ``adapter`` (read-only: capabilities, domain capabilities, versions).

    ``name`` labels it (``host``); default the host name libvirt reports. ``helpers``: what
    :func:`find_helpers` found, when the caller runs on the host (a remote URI: leave it None).
    """
    caps = parse_capabilities(adapter.capabilities())
    entries, defaults = {}, set()
    for emulator, arch, machine, virttype in queries(caps, arches):
        xml_text = adapter.domain_capabilities(emulator, arch, machine, virttype)
        if xml_text is None:
            continue
        entry = parse_domain_capabilities(xml_text)
        key = (entry["emulator"], entry["arch"], entry["machine"], entry["virttype"])
        if machine is None:
            defaults.add(key)   # libvirt's default machine for this arch and virt type
        entries.setdefault(key, entry)
    domcaps = [dict(entry, default=key in defaults) for key, entry in entries.items()]
    taken_at = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return build(caps, domcaps, adapter.versions(), name or adapter.hostname(), uri or adapter.uri, taken_at,
                 helpers)


# --- reading a snapshot back ---------------------------------------------------------------

def validate(snapshot, where="target"):
    """Check that ``snapshot`` is a virtfleet capability snapshot this collection can read; returns it.

    Bad input raises InvalidRequest naming the problem and the fix; nothing is read or changed.
    """
    hint = ("Take one with the virtfleet.libvirt.virt_capabilities module (its 'snapshot' result, or the "
            "file it writes with 'dest') and pass the dict, e.g. \"{{ lookup('file', path) | from_json }}\".")
    if not isinstance(snapshot, dict):
        raise InvalidRequest("%s: expected a capability snapshot (a dict), got %s. %s" % (
            where, type(snapshot).__name__, hint))
    version = snapshot.get(KEY)
    if version is None:
        raise InvalidRequest("%s: not a virtfleet capability snapshot (no '%s' key; keys: %s). %s" % (
            where, KEY, ", ".join(sorted(map(str, snapshot))[:12]) or "none", hint))
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRequest("%s: '%s' must be a positive integer, got %r. %s" % (where, KEY, version, hint))
    if version > SCHEMA_VERSION:
        raise InvalidRequest(
            "%s: the snapshot has schema version %d; this collection reads up to %d. Update the "
            "virtfleet.libvirt collection on the controller, or take the snapshot with this collection's "
            "virt_capabilities." % (where, version, SCHEMA_VERSION))
    problems = []
    versions = snapshot.get("versions")
    if not isinstance(versions, dict) or not isinstance(versions.get("libvirt"), str) or \
            _parse_version(versions.get("libvirt")) is None:
        problems.append("versions.libvirt (a version such as '9.0.0')")
    guests = snapshot.get("guests")
    if not isinstance(guests, list) or not all(
            isinstance(g, dict) and isinstance(g.get("arch"), str) and isinstance(g.get("machines"), list)
            for g in guests):
        problems.append("guests (a list of {arch, machines, ...})")
    dcaps = snapshot.get("domain_capabilities")
    if not isinstance(dcaps, list) or not all(isinstance(d, dict) and isinstance(d.get("arch"), str) for d in dcaps):
        problems.append("domain_capabilities (a list of {arch, machine, virttype, ...})")
    if problems:
        raise InvalidRequest("%s: the capability snapshot is missing or has malformed %s. %s" % (
            where, "; ".join(problems), hint))
    return snapshot


def _parse_version(text):
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(p or 0) for p in m.groups()) if m else None


class Target:
    """A snapshot with the lookups the readiness planners need (read-only)."""

    def __init__(self, snapshot):
        self.snapshot = snapshot
        versions = snapshot.get("versions", {})
        self.libvirt = _parse_version(versions.get("libvirt")) or (0, 0, 0)
        self.hypervisor = versions.get("hypervisor") or "QEMU"
        self.qemu_text = versions.get("qemu") or versions.get("hypervisor_version") or "?"
        self.label = "%s libvirt %s %s %s" % (snapshot.get("host") or "target", versions.get("libvirt", "?"),
                                              "qemu" if self.hypervisor == "QEMU" else self.hypervisor, self.qemu_text)
        self.guests = snapshot.get("guests") or []
        self.domcaps = snapshot.get("domain_capabilities") or []
        self.helpers = snapshot.get("helpers") or {}   # {} = not known (an older snapshot, a remote URI)
        self._machines = {}

    def guests_for(self, arch, os_type="hvm"):
        return [g for g in self.guests if g.get("arch") == arch and g.get("os_type", "hvm") == os_type]

    def emulators(self, arch, os_type="hvm"):
        out = []
        for guest in self.guests_for(arch, os_type):
            for emulator in guest.get("emulators") or [guest.get("emulator")]:
                if emulator and emulator not in out:
                    out.append(emulator)
        return out

    def machines(self, arch, os_type="hvm"):
        """({offered names}, {alias: canonical}, {deprecated}, {name: max cpus}) for an arch."""
        key = (arch, os_type)
        if key not in self._machines:
            names, aliases, deprecated, max_cpus = set(), {}, set(), {}
            for guest in self.guests_for(arch, os_type):
                names.update(guest.get("machines") or ())
                aliases.update(guest.get("aliases") or {})
                deprecated.update(guest.get("deprecated") or ())
                max_cpus.update(guest.get("max_cpus") or {})
            self._machines[key] = (names, aliases, deprecated, max_cpus)
        return self._machines[key]

    def resolve(self, arch, machine, os_type="hvm"):
        """The machine type the target runs for ``machine`` (an alias resolves), or None if not offered."""
        names, aliases, _dep, _max = self.machines(arch, os_type)
        if machine in aliases:
            return aliases[machine]
        return machine if machine in names else None

    def newest_of_family(self, arch, family, os_type="hvm"):
        names, _aliases, _dep, _max = self.machines(arch, os_type)
        same = [n for n in names if machine_family(n) == family and machine_version(n) is not None]
        return max(same, key=machine_version) if same else None

    def domain_caps(self, arch, virttype, machine):
        """(entry, exact) - the domain capabilities for a machine: its own, its family's, or the default."""
        entries = [d for d in self.domcaps if d.get("arch") == arch and d.get("virttype") == virttype]
        if not entries:
            return None, False
        for entry in entries:
            if entry.get("machine") == machine:
                return entry, True
        family = machine_family(machine) if machine else None
        for entry in entries:
            if family and machine_family(entry.get("machine")) == family:
                return entry, True
        for entry in entries:
            if entry.get("default"):
                return entry, False
        return entries[0], False
