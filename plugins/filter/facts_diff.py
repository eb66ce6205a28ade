# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""facts_diff: what changed in domains' canonical facts between two virt_domain_info results."""

from __future__ import annotations

# What an upgrade must never change behind a domain's back (persistent definition only: the
# live side legitimately differs while changes wait for a cold boot).
DOMAIN_KEYS = ("machine", "domain_type", "arch")
DEVICE_KEYS = ("kind", "address", "alias", "mac", "target", "bus", "source", "model")


def _domains(result):
    if isinstance(result, dict):
        result = result.get("domains", [])
    return {d["uuid"]: d for d in result or []}


def _label(dev):
    return "%s %s" % (dev.get("kind"), dev.get("target") or dev.get("mac") or dev.get("alias") or dev.get("path"))


def facts_diff(before, after):
    """Every difference, as readable strings, in domain and device order (empty = unchanged)."""
    old, new = _domains(before), _domains(after)
    out = []
    for uuid, dom in sorted(old.items(), key=lambda kv: kv[1]["name"]):
        name = dom["name"]
        other = new.get(uuid)
        if other is None:
            out.append("%s: domain disappeared" % name)
            continue
        for key in DOMAIN_KEYS:
            if dom.get(key) != other.get(key):
                out.append("%s: %s %s -> %s" % (name, key, dom.get(key), other.get(key)))
        devs, odevs = dom.get("devices", []), other.get("devices", [])
        if len(devs) != len(odevs):
            out.append("%s: %d devices -> %d" % (name, len(devs), len(odevs)))
        for index, (dev, odev) in enumerate(zip(devs, odevs)):
            for key in DEVICE_KEYS:
                if dev.get(key) != odev.get(key):
                    out.append("%s: device %d (%s) %s %s -> %s" % (name, index, _label(dev), key, dev.get(key), odev.get(key)))
    for uuid, dom in sorted(new.items(), key=lambda kv: kv[1]["name"]):
        if uuid not in old:
            out.append("%s: domain appeared" % dom["name"])
    return out


class FilterModule:
    def filters(self):
        return {"facts_diff": facts_diff}
