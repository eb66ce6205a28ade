# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable libvirt user aliases for devices (private, pure logic).

libvirt (>= 3.9, formatdomain.html "Devices": alias) keeps a user alias only when it starts with
``ua-`` and contains only ``[A-Za-z0-9_-]``; it silently drops any other alias and refuses a
duplicate ("non unique alias detected", VIR_ERR_CONFIG_UNSUPPORTED). The alias is used in device
events and in virDomainDetachDeviceAlias, which is why every device should carry one.

The alias a device derives (the table of bases, slugs, disambiguation: :func:`derive`,
:func:`assign`) is defined in ``_select``, next to device lookup, which falls back to it: lookup
must not depend on this planner. This module is the policy: which device types get aliases,
explicit assignments, ``replace``, and the changes (rules) it plans.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _select, _vocab
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import PENDING, SKIPPED, Change, Edit

ALIAS_BEFORE = ("master", "rom", "address", "acpi")

# The derivation lives in _select (device lookup); these names stay part of this module's API.
ALIAS_RE, PREFIX, MAX_SLUG, KIND_PREFIX = _select.ALIAS_RE, _select.PREFIX, _select.MAX_SLUG, _select.KIND_PREFIX
is_valid, slug, basis, derive = _select.is_valid, _select.slug, _select.basis, _select.derive
disambiguate, assign, derived_aliases = _select.disambiguate, _select.assign, _select.derived_aliases
_hash8, _aliasable = _select.hash8, _select.aliasable

SUPPORTED_TYPES = tuple(KIND_PREFIX)
# Hot-pluggable with libvirt's QEMU driver and with a stable identity: the default.
DEFAULT_TYPES = ("disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel")


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
        found, _key = _select.find(devs, selector)
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
    everything = state.inactive_devices()
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
        common = dict(check=_vocab.CHECK_ALIASES, domain=state.name, uuid=state.uuid, device=device)
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


_label = _vocab.device_label
