# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical facts of a domain for virt_domain_info (private, pure logic).

These facts are what the rolling-upgrade playbook compares before and after a host upgrade, so
every value comes from libvirt's XML as written (never a default we invent), keys are always
present (None when absent) and devices are listed in document order.

Every child of ``<devices>`` is a device here except ``<emulator>`` (a setting) and ``<audio>``:
besides the attachable kinds of ``_domxml.ATTACHABLE_KINDS`` (which the alias rule uses), also
graphics, leases, USB redirection filters and the rest (:data:`INFO_ONLY_KINDS`), so that a
change to any of them shows in the before/after comparison. Audio backends are host-side
objects that sound and graphics devices refer to by id (libvirt 9.0 adds one by itself), so
they are listed by id in the domain's ``audio``, not among the devices. Secrets are never read
(graphics passwords: only type, ports, autoport and the listen address are). Device lookup
(:func:`lookup`) stays on the attachable kinds, through ``_select``.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio, _domxml, _select

DEVICE_KEYS = ("kind", "index", "path", "target", "bus", "address", "alias", "live_alias", "serial", "wwn",
               "mac", "source", "model", "interfaceid", "device", "subsystem")
# Children of <devices> that ATTACHABLE_KINDS leaves out. libvirt 9.0's schema (formatdomain
# "Devices") has lease, graphics, redirfilter and nvram (pSeries), and audio (audio_backends);
# crypto and pstore come with later releases, which a rolling upgrade may bring. Any other
# element is listed too.
INFO_ONLY_KINDS = ("lease", "graphics", "redirfilter", "nvram", "crypto", "pstore")
NOT_DEVICES = ("emulator", "audio")
# Keys only some kinds have, besides DEVICE_KEYS (disks: see _diskio.describe and "format").
KIND_KEYS = {
    "graphics": ("type", "port", "tls_port", "autoport", "listen"),
    "lease": ("lockspace", "key", "target_path", "offset"),
    "redirfilter": ("usbdev",),
    "crypto": ("type",),
}
USBDEV_KEYS = ("class", "vendor", "product", "version", "allow")
# Compared between the persistent and the live definition of a running domain (graphics ports
# are not: with autoport the definition says -1 and the running domain the port it got).
COMPARED = ("alias", "address", "source", "mac", "target", "model", "cache", "io",
            "type", "listen", "lockspace", "key", "target_path", "offset", "usbdev")


def entries(root):
    """[(path, element, identity)] of every device (see the module docstring) in document order."""
    devs = root.find("devices")
    if devs is None:
        return []
    tree = root.getroottree()
    out = []
    for el in devs:
        if isinstance(el.tag, str) and el.tag not in NOT_DEVICES:
            path = tree.getpath(el)
            out.append((path, el, _domxml.identity(el, path)))
    return out


def _listen(el):
    """Where graphics listen: an address, ``network:NAME``, ``socket:PATH`` or ``none``; None: the default."""
    node = el.find("listen")
    if node is None:
        if el.get("socket"):
            return "socket:%s" % el.get("socket")
        return el.get("listen")
    kind = node.get("type", "address")
    if kind == "network":
        return "network:%s" % node.get("network")
    if kind == "socket":
        return "socket:%s" % node.get("socket") if node.get("socket") else "socket"
    if kind == "none":
        return "none"
    return node.get("address") or el.get("listen")


def _kind_facts(el):
    """The keys of KIND_KEYS for ``el`` (never a password: only named attributes are read)."""
    kind = el.tag
    if kind == "graphics":
        return {"type": el.get("type"), "port": el.get("port"), "tls_port": el.get("tlsPort"),
                "autoport": el.get("autoport"), "listen": _listen(el)}
    if kind == "lease":
        return {"lockspace": _domxml.text(el, "lockspace"), "key": _domxml.text(el, "key"),
                "target_path": _domxml.attr(el, "target", "path"), "offset": _domxml.attr(el, "target", "offset")}
    if kind == "redirfilter":
        return {"usbdev": [{key: rule.get(key) for key in USBDEV_KEYS} for rule in el.findall("usbdev")]}
    if kind == "crypto":
        return {"type": el.get("type")}
    return {}


def _model(el, ident):
    if el.tag == "interface":
        return ident.get("model")
    if el.tag in ("controller", "rng", "watchdog", "sound", "video", "memballoon", "tpm", "input"):
        return el.get("model") or _domxml.attr(el, "model", "type") or el.get("type")
    if el.tag == "crypto":
        return el.get("model")
    if el.tag == "pstore":
        return el.get("backend")
    return None


def _device(index, path, el, ident):
    item = {key: ident.get(key) for key in DEVICE_KEYS}
    item.update(kind=el.tag, index=index, path=path, model=_model(el, ident), live_alias=None,
                persistent=True, live=None, live_differs=[])
    if el.tag == "disk":
        cache, io = _domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io")
        item.update(_diskio.describe(cache, io))  # effective cache/io and blockdev flags
        item["format"] = _domxml.attr(el, "driver", "type")
    elif el.tag == "pstore":
        item["source"] = _domxml.text(el, "path")
    item.update(_kind_facts(el))
    return item


def domain_facts(state, lookups=()):
    """Facts of one domain: identity, machine, and every device with persistent/live aliases."""
    root = state.inactive_root()
    os_type = root.find("os/type")
    devs = entries(root)
    facts = {
        "name": state.name,
        "uuid": state.uuid,
        "state": state.state,
        "active": state.active,
        "persistent": state.persistent,
        "domain_type": root.get("type"),
        "machine": os_type.get("machine") if os_type is not None else None,
        "arch": os_type.get("arch") if os_type is not None else None,
        "devices": [_device(i, p, el, ident) for i, (p, el, ident) in enumerate(devs)],
        "live_only_devices": [],
        "audio": audio_backends(root),
    }
    live_devs = []
    if state.active and state.live_xml:
        live_root = state.live_root()
        live_devs = entries(live_root)
        paired, live_only = _select.pair_live(devs, live_devs)
        for item in facts["devices"]:
            other = paired.get(item["path"])
            if other is None:
                item["live"] = False
                item["live_differs"] = ["absent"]
                continue
            live_item = _device(item["index"], other[0], other[1], other[2])
            item["live"] = True
            item["live_alias"] = live_item["alias"]
            # Only what the definition sets can differ: libvirt fills in automatic aliases
            # (pci.1, scsi0) and generated paths (a channel's socket) in the live XML only.
            item["live_differs"] = [k for k in COMPARED if item.get(k) is not None and item.get(k) != live_item.get(k)]
        for entry in live_only:
            live_item = _device(None, entry[0], entry[1], entry[2])
            live_item.update(persistent=False, live=True, live_alias=live_item["alias"], alias=None)
            facts["live_only_devices"].append(live_item)
    facts["lookup"] = [lookup(_attachable(devs), _attachable(live_devs), sel) for sel in lookups]
    return facts


def audio_backends(root):
    """The audio backends (``<devices><audio id= type=>``) in document order, with their path."""
    tree = root.getroottree()
    return [{"id": el.get("id"), "type": el.get("type"), "path": tree.getpath(el)}
            for el in root.findall("devices/audio")]


def _attachable(devs):
    return [e for e in devs if e[1].tag in _domxml.ATTACHABLE_KINDS]


def lookup(devs, live_devs, selector):
    """Which device(s) a selector finds and by which key (persistent definition first, then live)."""
    found, key = _select.find(devs, selector)
    where = "persistent"
    if not found and live_devs:
        found, key = _select.find(live_devs, selector)
        where = "live"
    return {
        "selector": dict(selector),
        "matched_by": key,
        "found_in": where if found else None,
        "count": len(found),
        "devices": [{"path": p, "kind": i["kind"], "alias": i.get("alias"), "target": i.get("target"),
                     "mac": i.get("mac"), "serial": i.get("serial"), "source": i.get("source")}
                    for p, _el, i in found],
    }
