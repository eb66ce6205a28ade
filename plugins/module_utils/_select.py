# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device lookup (private, pure logic): selectors, matching, the alias a device derives, and
live/persistent pairing.

This is the one place where a device is found by a selector. virt_domain_info (``_info``), the
detach engine (``_detach``) and the alias planner (``_alias``) all use it; it depends on none of
them, so lookup does not change when the alias policy does.

A selector is a dict with exactly one of ``alias``, ``serial``, ``mac``, ``target``, ``source``.
Lookup (:func:`find`) prefers the alias: a selector ``{alias: ua-...}`` matches the device
carrying that user alias; when no device carries it (alias-less XML from older hosts, or a
running domain that still has libvirt's automatic aliases), it falls back to the device whose
*derived* alias is that one, i.e. the device with that serial, WWN, interfaceid, MAC, source
address or source, and the result names the key that matched. The other keys match directly:
``serial`` (disk serial), ``mac`` (interface MAC, case-insensitive), ``target`` (disk target dev,
e.g. ``vdb``, or interface target dev), ``source`` (file, block device, network, bridge, volume or
host device address as reported in the device identity).

Derived aliases. libvirt (>= 3.9, formatdomain.html "Devices": alias) keeps a user alias only
when it starts with ``ua-`` and contains only ``[A-Za-z0-9_-]`` (:func:`is_valid`). A device
derives its alias from its most stable identity; the first one a device has wins:

| type        | prefix    | basis, in order of precedence                                   |
|-------------|-----------|-----------------------------------------------------------------|
| disk        | disk      | serial, wwn, source (file/dev/volume/network), target dev      |
| interface   | net       | virtualport interfaceid, MAC, source network/bridge/dev        |
| hostdev     | hostdev   | source address (PCI, USB vendor:product, SCSI, mdev UUID)       |
| filesystem  | fs        | target dir (the mount tag), source                              |
| redirdev    | redir     | bus and n-th redirdev of that bus                               |
| rng         | rng       | backend (e.g. /dev/urandom) and n-th rng                        |
| channel     | channel   | target name (e.g. org.qemu.guest_agent.0), else n-th channel    |
| controller  | ctl       | type and index (not PCI controllers, whose alias is QEMU's bus) |
| watchdog    | watchdog  | model                                                          |
| shmem       | shmem     | name                                                           |
| input       | input     | type, bus and n-th of those                                     |
| vsock       | vsock     | n-th vsock                                                     |

Identities that are already safe tokens (UUIDs, serials, WWNs, names) are used as they are after
replacing characters outside ``[A-Za-z0-9_-]`` with ``-`` (MACs lose their colons). Paths use
their last component plus the first 8 hex digits of the SHA-256 of the whole value, so two
``disk.img`` in different directories differ. Anything longer than 48 characters is cut and gets
the same hash suffix.

Two devices that derive the same alias (e.g. two interfaces sharing a MAC on different networks)
are disambiguated deterministically in document order: the first keeps the alias, the next get
``-2``, ``-3``, ... skipping any alias already in use in the domain (:func:`assign`). Which
devices get an alias, and when one is replaced, is the planner's policy (``_alias``).
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest

SELECTOR_KEYS = ("alias", "serial", "mac", "target", "source")

ALIAS_RE = re.compile(r"ua-[A-Za-z0-9_-]+")  # used with fullmatch: "$" would accept a trailing newline
PREFIX = "ua-"
MAX_SLUG = 48
KIND_PREFIX = {
    "disk": "disk", "interface": "net", "hostdev": "hostdev", "filesystem": "fs", "redirdev": "redir",
    "rng": "rng", "channel": "channel", "controller": "ctl", "watchdog": "watchdog", "shmem": "shmem",
    "input": "input", "vsock": "vsock",
}


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
    carries a requested alias (:func:`find` passes the aliases devices are given, then the
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


def find(devs, selector):
    """:func:`match` with the alias fallback: the lookup every module uses.

    A requested alias that no device carries is looked for, in this order, as the alias a device
    is given by :func:`assign` (what virt_device_alias would set), then as the alias a device
    derives from its identity (its serial, MAC, ...: so a device that keeps another alias is
    still found by its derived one). ``matched_by`` names the identity key.
    """
    bases = {path: derive(el, ident) for path, el, ident in aliasable(devs)}
    return match(devs, selector, (derived_aliases(devs), bases))


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


# --- derived aliases (pure; the planner in _alias decides when they are applied) ----------------

def is_valid(alias):
    return bool(alias) and bool(ALIAS_RE.fullmatch(alias))


def hash8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def slug(value, path_like=False):
    """A token of ``[A-Za-z0-9_-]`` for ``value`` (see module docstring)."""
    value = str(value)
    base = value.rstrip("/").rsplit("/", 1)[-1] if path_like and "/" in value else value
    token = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or "x"
    if (path_like and "/" in value) or len(token) > MAX_SLUG:
        token = "%s-%s" % (token[:MAX_SLUG - 9].rstrip("-") or "x", hash8(value))
    return token


def _ordinal(el, same):
    """1-based position of ``el`` among its siblings for which ``same(sibling)`` holds."""
    n = 0
    for sib in el.getparent():
        if isinstance(sib.tag, str) and sib.tag == el.tag and same(sib):
            n += 1
        if sib is el:
            return n
    return n


def basis(el, ident):
    """(key, token) the alias derives from, or None for devices that must not be aliased."""
    kind = el.tag
    if kind == "disk":
        for key in ("serial", "wwn"):
            if ident.get(key):
                return key, slug(ident[key])
        if ident.get("source"):
            return "source", slug(ident["source"], path_like=True)
        if ident.get("target"):
            return "target", slug(ident["target"])
        return "ordinal", str(_ordinal(el, lambda s: True))
    if kind == "interface":
        if ident.get("interfaceid"):
            return "interfaceid", slug(ident["interfaceid"])
        if ident.get("mac"):
            return "mac", slug(ident["mac"].replace(":", "").lower())
        if ident.get("source"):
            return "source", slug(ident["source"], path_like=True)
        return "ordinal", str(_ordinal(el, lambda s: True))
    if kind == "hostdev":
        if ident.get("source"):
            return "source", slug(ident["source"].replace(":", "-").replace(".", "-"))
        return "ordinal", str(_ordinal(el, lambda s: True))
    if kind == "filesystem":
        tgt = _domxml.attr(el, "target", "dir")
        if tgt:
            return "target", slug(tgt, path_like="/" in tgt)
        return "source", slug(ident.get("source") or "fs", path_like=True)
    if kind == "redirdev":
        bus = el.get("bus", "usb")
        return "ordinal", "%s-%d" % (slug(bus), _ordinal(el, lambda s: s.get("bus", "usb") == bus))
    if kind == "rng":
        backend = _domxml.text(el, "backend") or el.findtext("backend/source") or _domxml.attr(el, "backend", "model") or "rng"
        return "source", "%s-%d" % (slug(backend, path_like=True), _ordinal(el, lambda s: True))
    if kind == "channel":
        name = _domxml.attr(el, "target", "name")
        if name:
            return "target", slug(name)
        return "ordinal", str(_ordinal(el, lambda s: True))
    if kind == "controller":
        if el.get("type") == "pci":
            return None  # libvirt names PCI buses after their controller's alias
        if el.get("type") == "usb" and el.get("model") == "none":
            return None  # "no USB controller": no device exists, and libvirt silently drops an alias on it
        return "index", "%s-%s" % (slug(el.get("type", "ctl")), slug(el.get("index", "0")))
    if kind == "watchdog":
        return "model", slug(el.get("model", "watchdog"))
    if kind == "shmem":
        return "name", slug(el.get("name") or str(_ordinal(el, lambda s: True)))
    if kind == "input":
        kind_bus = (el.get("type", ""), el.get("bus", ""))
        n = _ordinal(el, lambda s: (s.get("type", ""), s.get("bus", "")) == kind_bus)
        return "ordinal", "%s-%s-%d" % (slug(kind_bus[0] or "input"), slug(kind_bus[1] or "default"), n)
    if kind == "vsock":
        return "ordinal", str(_ordinal(el, lambda s: True))
    return None


def derive(el, ident):
    """(alias, basis key) for one device, before disambiguation, or (None, None)."""
    found = basis(el, ident)
    if found is None:
        return None, None
    key, token = found
    return "%s%s-%s" % (PREFIX, KIND_PREFIX[el.tag], token), key


def disambiguate(wanted, taken):
    """``wanted`` if free, else ``wanted-2``, ``wanted-3``, ... (adds the result to ``taken``)."""
    alias, n = wanted, 1
    while alias in taken:
        n += 1
        alias = "%s-%d" % (wanted, n)
    taken.add(alias)
    return alias


def assign(devs, explicit=None, replace=False, reserved=()):
    """The alias every device of ``devs`` should carry: the one source of truth for planning
    and for lookups, so a lookup by a derived alias finds the device that will get it.

    ``devs`` are :func:`entries` of one domain (aliasable devices only), ``explicit`` maps a
    path to a requested alias, ``reserved`` holds aliases of the domain's other devices. Returns
    path -> (alias, basis key); the basis is ``alias`` for an alias that is kept and ``aliases``
    for an explicit request. Kept: a valid alias whose device is its first holder, unless
    ``replace`` re-aliases it (to the request, or to the derived alias). Everything else derives
    its alias and is disambiguated in document order against every alias in use.
    """
    explicit = explicit or {}
    keep, seen = {}, set()
    for path, el, ident in devs:
        cur = ident.get("alias")
        if not is_valid(cur) or cur in seen:
            continue
        seen.add(cur)
        if path in explicit:
            if explicit[path] == cur or not replace:  # the same, or a mismatch reported, not applied
                keep[path] = cur
            continue
        if replace and cur != derive(el, ident)[0]:
            continue
        keep[path] = cur
    taken = set(reserved) | set(keep.values()) | set(explicit.values())
    out = {}
    for path, el, ident in devs:
        if path in keep:
            base, key = derive(el, ident)
            out[path] = (keep[path], key if keep[path] == base else "alias")
        elif path in explicit:
            out[path] = (explicit[path], "aliases")
        else:
            base, key = derive(el, ident)
            if base is not None:
                out[path] = (disambiguate(base, taken), key)
    return out, keep


def derived_aliases(devs):
    """Map path -> (alias, basis key): the alias :func:`assign` gives every aliasable device."""
    return assign(aliasable(devs))[0]


def aliasable(devs):
    """The entries of ``devs`` that derive an alias (e.g. not PCI controllers)."""
    return [e for e in devs if derive(e[1], e[2])[0] is not None]
