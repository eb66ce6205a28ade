# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable libvirt user aliases for devices (private, pure logic).

libvirt (>= 3.9, formatdomain.html "Devices": alias) keeps a user alias only when it starts with
``ua-`` and contains only ``[A-Za-z0-9_-]``; it silently drops any other alias and refuses a
duplicate ("non unique alias detected", VIR_ERR_CONFIG_UNSUPPORTED). The alias is used in device
events and in virDomainDetachDeviceAlias, which is why every device should carry one.

Derivation (most stable identity first; the first one a device has wins):

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
``-2``, ``-3``, ... skipping any alias already in use in the domain.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import PENDING, SKIPPED, Change, Edit

ALIAS_RE = re.compile(r"ua-[A-Za-z0-9_-]+")  # used with fullmatch: "$" would accept a trailing newline
PREFIX = "ua-"
MAX_SLUG = 48
ALIAS_BEFORE = ("master", "rom", "address", "acpi")

KIND_PREFIX = {
    "disk": "disk", "interface": "net", "hostdev": "hostdev", "filesystem": "fs", "redirdev": "redir",
    "rng": "rng", "channel": "channel", "controller": "ctl", "watchdog": "watchdog", "shmem": "shmem",
    "input": "input", "vsock": "vsock",
}
SUPPORTED_TYPES = tuple(KIND_PREFIX)
# Hot-pluggable with libvirt's QEMU driver and with a stable identity: the default.
DEFAULT_TYPES = ("disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel")


def is_valid(alias):
    return bool(alias) and bool(ALIAS_RE.fullmatch(alias))


def _hash8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def slug(value, path_like=False):
    """A token of ``[A-Za-z0-9_-]`` for ``value`` (see module docstring)."""
    value = str(value)
    base = value.rstrip("/").rsplit("/", 1)[-1] if path_like and "/" in value else value
    token = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or "x"
    if (path_like and "/" in value) or len(token) > MAX_SLUG:
        token = "%s-%s" % (token[:MAX_SLUG - 9].rstrip("-") or "x", _hash8(value))
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

    ``devs`` are ``_select.entries`` of one domain (aliasable devices only), ``explicit`` maps a
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
    return assign(_aliasable(devs))[0]


def find(devs, selector):
    """``_select.match`` with the alias fallback.

    A requested alias that no device carries is looked for, in this order, as the alias a device
    is given by :func:`assign` (what virt_device_alias would set), then as the alias a device
    derives from its identity (its serial, MAC, ...: so a device that keeps another alias is
    still found by its derived one). ``matched_by`` names the identity key.
    """
    bases = {path: derive(el, ident) for path, el, ident in _aliasable(devs)}
    return _select.match(devs, selector, (derived_aliases(devs), bases))


def _aliasable(entries):
    return [e for e in entries if derive(e[1], e[2])[0] is not None]


# --- planning ----------------------------------------------------------------------------------

RULE_MISSING = "alias-missing"
RULE_INVALID = "alias-invalid"
RULE_DUPLICATE = "alias-duplicate"
RULE_MISMATCH = "alias-mismatch"
RULE_LIVE = "live-differs"
RULE_TRANSIENT = "transient-domain"


def validate_alias(alias, where):
    if not is_valid(alias):
        raise InvalidRequest(
            "%s: alias %r is not a valid libvirt user alias: it must start with 'ua-' and contain only "
            "letters, digits, '_' and '-' (libvirt silently drops any other alias). Example: ua-disk-data01."
            % (where, alias))


def resolve_explicit(devs, assignments, domain):
    """Map device path -> requested alias for one domain; InvalidRequest on any ambiguity.

    ``assignments`` is a list of (index, selector, alias) already validated for syntax.
    """
    by_path, by_alias = {}, {}
    for index, selector, alias in assignments:
        where = "aliases[%d] (domain %s, match %s)" % (index, domain, _select.describe_selector(selector))
        found, _key = find(devs, selector)
        if not found:
            raise InvalidRequest("%s selects no device of the chosen device_types. List the domain's devices "
                                 "with virtfleet.libvirt.virt_domain_info and fix the match." % where)
        if len(found) > 1:
            raise InvalidRequest("%s selects %d devices (%s); use a selector that matches exactly one, e.g. "
                                 "target or source." % (where, len(found), ", ".join(e[0] for e in found)))
        path = found[0][0]
        if path in by_path and by_path[path] != alias:
            raise InvalidRequest("%s assigns %s to %s, which is already assigned %s." % (where, alias, path, by_path[path]))
        if alias in by_alias and by_alias[alias] != path:
            raise InvalidRequest("%s: alias %s is requested for two devices (%s and %s); aliases must be unique "
                                 "within a domain." % (where, alias, by_alias[alias], path))
        by_path[path], by_alias[alias] = alias, path
    return by_path


def plan_domain(state, device_types=DEFAULT_TYPES, assignments=(), replace=False):
    """Every alias deviation of one domain's devices of ``device_types``, as Changes."""
    root = state.inactive_root()
    everything = _select.entries(root)
    devs = _aliasable([e for e in everything if e[1].tag in device_types])
    paths = {e[0] for e in devs}
    # Aliases of every other device (other types, PCI controllers) are taken too: libvirt
    # requires uniqueness across the whole domain.
    reserved = {e[2]["alias"] for e in everything if e[0] not in paths and is_valid(e[2].get("alias"))}
    explicit = resolve_explicit(devs, assignments, state.name)
    desired_map, keep = assign(devs, explicit, replace, reserved)
    for path, alias in explicit.items():
        if desired_map[path][0] != alias:
            continue  # not applied (replace: false): reported as a mismatch below
        holder = [p for p, a in keep.items() if a == alias and p != path]
        if holder:
            raise InvalidRequest(
                "aliases: %s is requested for %s in domain %s but %s already carries it; pick another alias, or "
                "assign %s a new one in the same task." % (alias, path, state.name, holder[0], holder[0]))
        if alias in reserved:
            raise InvalidRequest(
                "aliases: %s is requested for %s in domain %s but a device outside device_types already carries "
                "it; pick another alias." % (alias, path, state.name))

    running = state.active and state.live_xml is not None
    live = {}
    if running:
        live_devs = _aliasable(_select.entries(state.live_root(), kinds=device_types))
        paired, _live_only = _select.pair_live(devs, live_devs)
        live = {p: (e[2].get("alias") if e is not None else None) for p, e in paired.items()}

    changes, first_seen = [], set()
    for path, el, ident in devs:
        cur = ident.get("alias")
        duplicate = is_valid(cur) and cur in first_seen
        if is_valid(cur):
            first_seen.add(cur)
        desired, basis_key = desired_map[path]
        device = {k: ident.get(k) for k in ("kind", "target", "bus", "alias", "source", "serial", "mac", "path")}
        live_alias = live.get(path)
        common = dict(domain=state.name, uuid=state.uuid, device=device)
        if path in explicit and explicit[path] != desired:
            changes.append(Change(
                rule=RULE_MISMATCH, current={"alias": cur}, desired={"alias": explicit[path], "basis": "aliases"},
                status=SKIPPED, message="%s carries alias %s, aliases requests %s; set replace: true to re-alias it"
                % (_label(device), cur, explicit[path]), **common))
            continue
        if desired == cur:
            if running and live_alias != desired:
                changes.append(Change(
                    rule=RULE_LIVE, current={"alias": live_alias}, desired={"alias": desired, "basis": basis_key},
                    status=PENDING, pending_restart=True,
                    message="%s: the running domain still calls it %s; alias %s applies at the next cold boot "
                            "(shut down and start; a reboot inside the guest is not enough)" % (
                                _label(device), live_alias or "(no alias)", desired), **common))
            continue
        if cur is None:
            rule, why = RULE_MISSING, "has no user alias"
        elif not is_valid(cur):
            rule, why = RULE_INVALID, "has alias %r, which libvirt ignores" % cur
        elif duplicate:
            rule, why = RULE_DUPLICATE, "repeats alias %s of an earlier device" % cur
        else:
            rule, why = RULE_MISMATCH, "alias %s is replaced (replace: true)" % cur
        message = "%s %s; %s (from its %s)" % (_label(device), why, desired, basis_key)
        # libvirt writes <alias> after <boot> and before <master>, <rom>, <address>, <acpi>.
        edits, status = (Edit(path, "alias", (("name", desired),), child_before=ALIAS_BEFORE),), ""
        if not state.persistent:
            edits, status = (), SKIPPED
            message += "; transient domain (no persistent definition): fix it where it is defined"
        changes.append(Change(
            rule=rule, current={"alias": cur}, desired={"alias": desired, "basis": basis_key}, message=message,
            edits=edits, status=status, pending_restart=bool(running and status != SKIPPED and live_alias != desired),
            **common))
    return changes


def _label(device):
    ident = device.get("target") or device.get("mac") or device.get("source") or device.get("path")
    return "%s %s" % (device["kind"], ident)
