# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device selectors and live/persistent pairing (private, pure logic).

A selector is a dict with exactly one of ``alias``, ``serial``, ``mac``, ``target``, ``source``.
Lookup prefers the alias: a selector ``{alias: ua-...}`` matches the device carrying that user
alias; when no device carries it (alias-less XML from older hosts, or a running domain that still
has libvirt's automatic aliases), it falls back to the device whose *derived* alias is that one,
i.e. the device with that serial, WWN, interfaceid, MAC, source address or source (see
``_alias``), and the result names the key that matched. The other keys match directly:
``serial`` (disk serial), ``mac`` (interface MAC, case-insensitive), ``target`` (disk target dev,
e.g. ``vdb``, or interface target dev), ``source`` (file, block device, network, bridge, volume or
host device address as reported in the device identity).
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest

SELECTOR_KEYS = ("alias", "serial", "mac", "target", "source")


def validate_selector(selector):
    """(key, value) of a selector, or InvalidRequest naming what is wrong."""
    if not isinstance(selector, dict):
        raise InvalidRequest("A device selector must be a dict with exactly one of %s, got %r."
                             % (", ".join(SELECTOR_KEYS), selector))
    keys = [k for k in SELECTOR_KEYS if selector.get(k) not in (None, "")]
    unknown = sorted(set(selector) - set(SELECTOR_KEYS))
    if unknown or len(keys) != 1:
        raise InvalidRequest(
            "A device selector needs exactly one of %s; got %r. Use e.g. {alias: ua-disk-1} or {mac: "
            "'52:54:00:12:34:56'}." % (", ".join(SELECTOR_KEYS), selector))
    return keys[0], str(selector[keys[0]])


def describe_selector(selector):
    key, value = validate_selector(selector)
    return "%s=%s" % (key, value)


def entries(root, kinds=None):
    """[(path, element, identity)] of the domain's devices in document order."""
    out = []
    for path, el in _domxml.devices(root):
        if kinds is None or el.tag in kinds:
            out.append((path, el, _domxml.identity(el, path)))
    return out


def _value_matches(key, ident, value):
    got = ident.get(key)
    if got is None:
        return False
    if key == "mac":
        return got.lower() == value.lower()
    return got == value


def match(devs, selector, derived=()):
    """Devices matching ``selector`` and the key that matched.

    ``derived`` is a sequence of maps path -> (alias, basis key) tried in order when no device
    carries a requested alias (``_alias.find`` passes the aliases devices are given, then the
    aliases they derive). Returns (list of entries, matched_by); matched_by is None when nothing
    matched.
    """
    key, value = validate_selector(selector)
    found = [d for d in devs if _value_matches(key, d[2], value)]
    if found or key != "alias":
        return found, (key if found else None)
    for tier in derived:
        fallback = [d for d in devs if tier.get(d[0], (None, None))[0] == value]
        if fallback:
            return fallback, tier[fallback[0][0]][1]
    return [], None


def _pair_key(ident, ordinal):
    kind = ident["kind"]
    if kind == "disk" and ident.get("target"):
        return (kind, "target", ident["target"])
    if kind == "interface" and ident.get("mac"):
        return (kind, "mac", ident["mac"].lower(), ordinal)
    if kind == "hostdev" and ident.get("source"):
        return (kind, "source", ident["source"])
    return (kind, "ordinal", ordinal)


def _keys(devs):
    counts, out = {}, []
    for entry in devs:
        ident = entry[2]
        # interfaces may share a MAC (different networks): the n-th one pairs with the n-th one
        base = (ident["kind"], (ident.get("mac") or "").lower()) if ident["kind"] == "interface" else (ident["kind"],)
        counts[base] = counts.get(base, 0) + 1
        out.append((_pair_key(ident, counts[base]), entry))
    return out


def pair_live(persistent_devs, live_devs):
    """Map each persistent device path to its live counterpart entry (or None), plus live-only entries.

    Pairs by disk target, interface MAC (n-th with n-th), hostdev source, else the n-th device of
    the same kind (aliases cannot pair: a running domain keeps its old ones until a cold boot).
    """
    live_by_key = {}
    for key, entry in _keys(live_devs):
        live_by_key.setdefault(key, entry)
    paired, used = {}, set()
    for key, entry in _keys(persistent_devs):
        other = live_by_key.get(key)
        paired[entry[0]] = other
        if other is not None:
            used.add(other[0])
    live_only = [e for e in live_devs if e[0] not in used]
    return paired, live_only
