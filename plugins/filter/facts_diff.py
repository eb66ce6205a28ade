# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""facts_diff: what changed in domains' canonical facts between two virt_domain_info results."""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _vocab

# What an upgrade must never change behind a domain's back (persistent definition only: the
# live side legitimately differs while changes wait for a cold boot).
DOMAIN_KEYS = ("machine", "domain_type", "arch")
DEVICE_KEYS = ("kind", "address", "alias", "mac", "target", "bus", "source", "model",
               # graphics, leases, USB redirection filters, crypto (see virt_domain_info)
               "type", "port", "tls_port", "autoport", "listen", "lockspace", "key", "target_path", "offset",
               "usbdev")


def _domains(result):
    if isinstance(result, dict):
        result = result.get("domains", [])
    return {d["uuid"]: d for d in result or []}


_label = _vocab.device_label


def _shown(value):
    """A fact value for a message: lists and dicts (redirfilter rules) as short text."""
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(str(_shown(v)) for v in value)
    if isinstance(value, dict):
        return " ".join("%s=%s" % (k, v) for k, v in value.items() if v is not None) or "{}"
    return value


def _implicit_audio(domain):
    """The audio backend QEMU got before libvirt 7.2 wrote one into the definition: spice with SPICE
    graphics, none with VNC or no graphics (libvirt's defaults unless qemu.conf passes the host's through)."""
    kinds = {d.get("type") for d in domain.get("devices", []) if d.get("kind") == "graphics"}
    if "spice" in kinds:
        return "spice"
    if kinds <= {"vnc"}:
        return "none"
    return None   # SDL and others took the host's environment: nothing to compare with


def _audio(name, old, new, domain=None):
    """Audio backends are compared by id (devices refer to them by id, not by position).

    libvirt >= 7.2 writes the backend QEMU already had into every definition it loads (measured on the
    real Debian 11 -> 12 upgrade: ``<audio id='1' type='none'/>`` in every VNC or headless domain); a
    single such backend where the old definition had none at all is that normalisation, not a change.
    """
    out = []
    before = {a.get("id"): a for a in old or []}
    after = {a.get("id"): a for a in new or []}
    if not before and len(after) == 1 and domain is not None:
        (ident, backend), = after.items()
        if str(ident) == "1" and backend.get("type") is not None and backend.get("type") == _implicit_audio(domain):
            return out
    for ident, backend in before.items():
        other = after.get(ident)
        if other is None:
            out.append("%s: audio %s (%s) disappeared" % (name, ident, backend.get("type")))
        elif backend.get("type") != other.get("type"):
            out.append("%s: audio %s type %s -> %s" % (name, ident, backend.get("type"), other.get("type")))
    for ident, backend in after.items():
        if ident not in before:
            out.append("%s: audio %s (%s) appeared" % (name, ident, backend.get("type")))
    return out


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
                    out.append("%s: device %d (%s) %s %s -> %s" % (
                        name, index, _label(dev), key, _shown(dev.get(key)), _shown(odev.get(key))))
        out.extend(_audio(name, dom.get("audio"), other.get("audio"), dom))
    for uuid, dom in sorted(new.items(), key=lambda kv: kv[1]["name"]):
        if uuid not in old:
            out.append("%s: domain appeared" % dom["name"])
    return out


class FilterModule:
    def filters(self):
        return {"facts_diff": facts_diff}
