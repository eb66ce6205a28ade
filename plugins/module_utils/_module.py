# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few lines every virtfleet module's main() shares (private; Ansible glue, no libvirt)."""

from __future__ import annotations

import json

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _capabilities, _diskio, _domxml, _engine, _redact, _rules
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DEFAULT_URI, HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR, Adapter
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import DEFAULT_BACKUP_DIR
from ansible_collections.virtfleet.libvirt.plugins.module_utils._engine import failure_message
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._hostlock import HostLock

FINDINGS_FORMATS = ("list", "json")
DEFAULT_LOCK_TIMEOUT = 300
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 32


def fleet_argument_spec(backup=True, **extra):
    """The options of the virtfleet.libvirt.fleet doc fragment (uri, domains, exclude, backup_dir)."""
    spec = dict(
        uri=dict(type="str", default=DEFAULT_URI),
        domains=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
    )
    if backup:
        spec["backup_dir"] = dict(type="path", default=DEFAULT_BACKUP_DIR)
        spec["lock_timeout"] = dict(type="float", default=DEFAULT_LOCK_TIMEOUT)
        spec["parallel"] = dict(type="int", default=DEFAULT_PARALLEL)
    spec.update(extra)
    return spec


def disk_io_options():
    """The disk-io rule's options: top level of virt_disk_io_policy, rules.disk_io of virt_policy."""
    return dict(
        io=dict(type="str", default=_diskio.KEEP, choices=[_diskio.KEEP] + list(_diskio.IO_MODES)),
        cache=dict(type="str", default=_diskio.KEEP, choices=[_diskio.KEEP] + list(_diskio.CACHE_MODES)),
    )


def alias_options():
    """The alias rule's options: top level of virt_device_alias, rules.aliases of virt_policy."""
    return dict(
        device_types=dict(type="list", elements="str", default=list(_alias.DEFAULT_TYPES),
                          choices=list(_alias.SUPPORTED_TYPES)),
        aliases=dict(type="list", elements="dict", default=[], options=dict(
            domain=dict(type="str", required=True),
            match=dict(type="dict", required=True),
            alias=dict(type="str", required=True),
        )),
        replace=dict(type="bool", default=False),
    )


def readiness_options():
    """The options of the upgrade_readiness and machine_type rules (rules.<name> of virt_policy)."""
    return dict(target=dict(type="dict"))


def require_libraries(module):
    """Fail with the package to install when libvirt-python or lxml is missing on the host.

    Also masks a password given inside ``uri`` (``qemu+ssh://root:pw@hv1/system``) everywhere Ansible
    shows the module's arguments and result (``invocation``, -vvv, the log): it is added to the values
    Ansible replaces, not the whole URI, so the host stays readable.
    """
    module.no_log_values.update(_redact.uri_secrets(module.params.get("uri")))
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python (python3-libvirt)"), exception=str(LIBVIRT_IMPORT_ERROR))
    if not _domxml.HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml (python3-lxml)"), exception=str(_domxml.LXML_IMPORT_ERROR))


def finish(module, result):
    """exit_json, or fail_json naming every domain whose change failed."""
    msg = failure_message(result) if "domains" in result else None
    if msg:
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


def encode_findings(result, no_log_values):
    """``result["findings"]`` as one JSON text, ``result["findings_json"]`` (virt_policy findings_format=json).

    Ansible walks a module's result value by value (remove_values in exit_json, then the controller's
    decoder, the copies of a registered result and the worker's pickle): about 0.6 s for 5,000
    findings, against 0.05 s for the same findings as one string. The text holds the same entries
    as the list, masked the same way: the no_log values (a password inside ``uri``) are removed
    from the findings before they are encoded. If one of them still occurs in the text (a value
    that is also a key's name, or that JSON escapes), exit_json's masking would cut through the
    document, so the findings stay a list. Returns the format the result has now.
    """
    findings = result["findings"]
    secrets = [v for v in no_log_values if isinstance(v, str) and v]
    if secrets:
        findings = remove_values(findings, no_log_values)
    text = json.dumps(findings, ensure_ascii=False, separators=(",", ":"))
    if any(secret in text for secret in secrets):
        result["findings"] = findings
        return "list"
    del result["findings"]
    result["findings_json"] = text
    return "json"


def _local_helpers(uri):
    """The helper programs of this machine when ``uri`` is a local QEMU daemon (else unknown: None)."""
    return _capabilities.find_helpers() if uri.startswith("qemu:///") else None


def run_rules(module, requested, details, findings_format=None):
    """The policy modules' whole run: validate, connect, query the host once, one engine call.

    ``findings_format`` (virt_policy's option): ``json`` returns the findings as one JSON text
    (:func:`encode_findings`); given, the result says in ``findings_format`` which format it has.
    """
    params = module.params
    _rules.build(requested)  # every option checked before connecting
    if not 1 <= params["parallel"] <= MAX_PARALLEL:
        raise InvalidRequest("parallel=%s: give 1 to %d (domains changed at once; 1 = one by one)."
                             % (params["parallel"], MAX_PARALLEL))
    adapter = Adapter(params["uri"])
    try:
        lib, hv_type, hv = adapter.versions()  # up front: a later failure must not lose the results
        host = {"libvirt": lib, "hypervisor": hv_type, "hypervisor_version": hv}
        if _rules.needs_live_snapshot(requested):
            # A readiness rule without a target compares with this host as it is now (packages upgraded,
            # guests not yet restarted): its capabilities are read once, read-only.
            host["snapshot"] = _capabilities.take(adapter, uri=_redact.redact_uri(params["uri"]),
                                                  helpers=_local_helpers(params["uri"]))
        rules = _rules.build(requested, host=host)
        engine = _engine.Engine(
            adapter, rules, check_mode=module.check_mode, diff_mode=module._diff, backup_dir=params["backup_dir"],
            details=details, lock=lambda: HostLock(params["uri"], timeout=params["lock_timeout"]),
            workers=params["parallel"], blockers=_rules.define_blockers(host))
        result = engine.run(params["domains"], params["exclude"])
        result["host"] = {"uri": _redact.redact_uri(params["uri"]), "libvirt_version": ".".join(map(str, lib)),
                          "hypervisor": hv_type, "hypervisor_version": ".".join(map(str, hv))}
        result["rules"] = [rule.check for rule in rules]
    finally:
        adapter.close()
    if findings_format == "json":
        findings_format = encode_findings(result, module.no_log_values)
    if findings_format is not None:
        result["findings_format"] = findings_format
    return result
