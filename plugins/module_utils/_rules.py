# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of rules the engine composes (private, pure logic).

A rule is a pure planner (domain state -> [Change]) plus what it needs checked before anything
is read (its options, the host's versions) and, optionally, a per-domain description for the
result (effective disk flags, aliases). Adding a rule adds one ``_build_*`` function and one
entry in :data:`REGISTRY`; the engine, the statuses and the wording stay as they are.

Rule order is the engine's business: the rules' edits of one domain are applied together in
one define, so libvirt validates the domain once with every fix in place (a legacy
``io='native'`` + writeback domain is refused on any redefine until its io is fixed, so an
alias fix alone could never be defined; together they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _capabilities, _diskio, _readiness, _select, _vocab
from ansible_collections.virtfleet.libvirt.plugins.module_utils import _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest


@dataclass(frozen=True)
class Rule:
    """One configured rule: ``plan(state) -> [Change]``; ``describe(state, root) -> dict`` for details;
    ``precheck(selected)`` validates the request against the selected domains [(name, uuid)];
    ``annotate(state) -> dict`` adds keys to the domain's summary in every run (not only with details);
    ``prepare(states)`` sees every selected domain's state before any is planned (host-wide rules)."""

    check: str
    plan: Callable
    describe: Optional[Callable] = None
    precheck: Optional[Callable] = None
    annotate: Optional[Callable] = None
    prepare: Optional[Callable] = None


# --- disk io ---------------------------------------------------------------------------------

def _build_disk_io(options, host):
    io, cache = options.get("io") or _diskio.KEEP, options.get("cache") or _diskio.KEEP
    _diskio.validate_request(io, cache)
    if host is not None:
        _diskio.check_host_support(io, host["libvirt"], host["hypervisor"], host["hypervisor_version"])
    return Rule(
        check=_vocab.CHECK_DISK_IO,
        plan=lambda state: _diskio.plan_domain(state, want_io=io, want_cache=cache),
        describe=lambda root: {"disks": _diskio.disk_report(root)},
    )


# --- aliases ---------------------------------------------------------------------------------

def validate_assignments(aliases):
    """Syntax of every explicit assignment, before connecting: [(index, domain, selector, alias)]."""
    out, seen = [], {}
    for index, item in enumerate(aliases or ()):
        where = "aliases[%d] (domain %s)" % (index, item["domain"])
        _select.validate_selector(item["match"])
        _alias.validate_alias(item["alias"], where)
        key = (item["domain"], item["alias"])
        if key in seen:
            raise InvalidRequest("%s: alias %s is requested twice for domain %s (aliases[%d] and aliases[%d]); "
                                 "aliases must be unique within a domain." % (where, item["alias"], item["domain"],
                                                                              seen[key], index))
        seen[key] = index
        out.append((index, item["domain"], item["match"], item["alias"]))
    return out


def names_domain(key, name, uuid):
    """Whether ``key`` names the domain: its name, or its UUID in any spelling libvirt accepts."""
    return key == name or key.replace("-", "").lower() == uuid.replace("-", "").lower()


def _check_assignment_domains(assignments, selected):
    for index, dom, _sel, _alias_name in assignments:
        if not any(names_domain(dom, name, uuid) for name, uuid in selected):
            raise InvalidRequest(
                "aliases[%d]: domain %s is not among the selected domains (%s). Add it to 'domains', remove it "
                "from 'exclude', or fix the name." % (
                    index, dom, ", ".join(sorted(name for name, _uuid in selected)) or "none"))


def _build_aliases(options, _host):
    assignments = validate_assignments(options.get("aliases"))
    types = tuple(dict.fromkeys(options.get("device_types") or _alias.DEFAULT_TYPES))
    unknown = [t for t in types if t not in _alias.SUPPORTED_TYPES]
    if unknown:
        raise InvalidRequest("device_types: %s not supported; choose from %s." % (
            ", ".join(unknown), ", ".join(_alias.SUPPORTED_TYPES)))
    replace = bool(options.get("replace"))

    def plan(state):
        mine = [(i, sel, alias) for i, dom, sel, alias in assignments if names_domain(dom, state.name, state.uuid)]
        return _alias.plan_domain(state, types, mine, replace)

    def describe(root):
        return {"aliases": [{"path": p, "kind": i["kind"], "alias": i["alias"]}
                            for p, _el, i in _select.entries(root, kinds=types)]}

    return Rule(check=_vocab.CHECK_ALIASES, plan=plan, describe=describe,
                precheck=lambda selected: _check_assignment_domains(assignments, selected))


# --- upgrade readiness and machine-type hygiene (report-only: they never edit) ---------------

def _target(options, host, check):
    """The Target a readiness rule compares with: the given snapshot, or the host's own (live)."""
    snapshot = options.get("target")
    if snapshot is not None:
        return _capabilities.Target(_capabilities.validate(snapshot, "rules.%s.target" % check))
    if host is not None and host.get("snapshot") is not None:
        return _capabilities.Target(host["snapshot"])
    return None   # offline validation: the rule is never planned


def needs_live_snapshot(requested):
    """Whether a requested readiness rule compares with the host itself (its snapshot must be taken live)."""
    return any(requested.get(name) is not None and not (requested.get(name) or {}).get("target")
               for name in (_vocab.CHECK_READINESS, _vocab.CHECK_MACHINE_TYPE))


def _build_readiness(options, host):
    target = _target(options, host, _vocab.CHECK_READINESS)
    seen = {}

    def plan(state):
        if target is None:
            return []
        reasons = _readiness.check_domain(state.inactive_root(), target)
        seen[state.uuid] = reasons
        return _readiness.changes(state, _vocab.CHECK_READINESS, reasons)

    def annotate(state):
        reasons = seen.get(state.uuid, [])
        return {"readiness": {"target": target.label if target is not None else None, "starts": not reasons,
                              "reasons": reasons}}

    return Rule(check=_vocab.CHECK_READINESS, plan=plan, annotate=annotate)


def _build_machine_type(options, host):
    target = _target(options, host, _vocab.CHECK_MACHINE_TYPE)
    norms = {}

    def prepare(states):
        norms.clear()
        norms.update(_readiness.group_norms(_readiness.machine_of(s.inactive_root()) for s in states))

    def plan(state):
        if target is None:
            return []
        os_type = {"kind": "os", "path": "/domain/os/type"}
        machine = _readiness.machine_of(state.inactive_root())[1]
        return [_plan.Change(domain=state.name, uuid=state.uuid, device=dict(os_type, machine=machine), rule=code,
                             current={"machine": machine}, desired={}, message="%s: %s" % (state.name, message),
                             status=status, check=_vocab.CHECK_MACHINE_TYPE)
                for code, status, message in _readiness.check_machine_type(state.inactive_root(), target, norms)]

    return Rule(check=_vocab.CHECK_MACHINE_TYPE, plan=plan, prepare=prepare)


def define_blockers(host):
    """``blockers(state) -> [(device, message)]``: what the host's libvirt refuses at any define, or None."""
    # The refusal is the QEMU driver's (qemu_validate.c); libvirt's test driver and others take it.
    if host is None or host.get("libvirt") is None or host.get("hypervisor") != "QEMU":
        return None
    version = tuple(host["libvirt"])
    if version < _readiness.VNC_PASSWORD_REFUSED_SINCE:
        return None
    return lambda state: _readiness.define_blockers(state, version)


# Order of application and of findings: disk io first (see the module docstring).
REGISTRY = {
    _vocab.CHECK_DISK_IO: _build_disk_io,
    _vocab.CHECK_ALIASES: _build_aliases,
    _vocab.CHECK_READINESS: _build_readiness,
    _vocab.CHECK_MACHINE_TYPE: _build_machine_type,
}


def build(requested, host=None):
    """Configured rules for ``requested`` ({check: options or None}), in registry order.

    ``host`` ({libvirt, hypervisor, hypervisor_version} as tuples) lets rules refuse settings the
    host cannot honour before anything is read; None skips those checks (offline planning).
    """
    unknown = [name for name in requested if name not in REGISTRY]
    if unknown:
        raise InvalidRequest("Unknown rule(s) %s; known rules: %s." % (", ".join(unknown), ", ".join(REGISTRY)))
    rules = [REGISTRY[name](requested[name] or {}, host) for name in REGISTRY
             if name in requested and requested[name] is not None]
    if not rules:
        raise InvalidRequest("No rule requested: give at least one of %s under 'rules'." % ", ".join(REGISTRY))
    return rules
