# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical facts of a domain for virt_domain_info (private, pure logic).

These facts are what the rolling-upgrade playbook compares before and after a host upgrade, so
every value comes from libvirt's XML as written (never a default we invent), keys are always
present (None when absent) and devices are listed in document order.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _diskio, _domxml, _select

DEVICE_KEYS = ("kind", "index", "path", "target", "bus", "address", "alias", "live_alias", "serial", "wwn",
               "mac", "source", "model", "interfaceid", "device", "subsystem")
# Compared between the persistent and the live definition of a running domain.
COMPARED = ("alias", "address", "source", "mac", "target", "model", "cache", "io")


def _model(el, ident):
    if el.tag == "interface":
        return ident.get("model")
    if el.tag in ("controller", "rng", "watchdog", "sound", "video", "memballoon", "tpm", "input"):
        return el.get("model") or _domxml.attr(el, "model", "type") or el.get("type")
    return None


def _device(index, path, el, ident):
    item = {key: ident.get(key) for key in DEVICE_KEYS}
    item.update(kind=el.tag, index=index, path=path, model=_model(el, ident), live_alias=None,
                persistent=True, live=None, live_differs=[])
    if el.tag == "disk":
        cache, io = _domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io")
        item.update(_diskio.describe(cache, io))  # effective cache/io and blockdev flags
        item["format"] = _domxml.attr(el, "driver", "type")
    return item


def domain_facts(state, lookups=()):
    """Facts of one domain: identity, machine, and every device with persistent/live aliases."""
    root = state.inactive_root()
    os_type = root.find("os/type")
    devs = _select.entries(root)
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
    }
    live_devs = []
    if state.active and state.live_xml:
        live_root = state.live_root()
        live_devs = _select.entries(live_root)
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
    facts["lookup"] = [lookup(devs, live_devs, sel) for sel in lookups]
    return facts


def lookup(devs, live_devs, selector):
    """Which device(s) a selector finds and by which key (persistent definition first, then live)."""
    found, key = _alias.find(devs, selector)
    where = "persistent"
    if not found and live_devs:
        found, key = _alias.find(live_devs, selector)
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
