# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few lines every virtfleet module's main() shares (private; Ansible glue, no libvirt)."""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DEFAULT_URI, HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import DEFAULT_BACKUP_DIR
from ansible_collections.virtfleet.libvirt.plugins.module_utils._runner import failure_message


def fleet_argument_spec(backup=True, **extra):
    """The options of the virtfleet.libvirt.fleet doc fragment (uri, domains, exclude, backup_dir)."""
    spec = dict(
        uri=dict(type="str", default=DEFAULT_URI),
        domains=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
    )
    if backup:
        spec["backup_dir"] = dict(type="path", default=DEFAULT_BACKUP_DIR)
    spec.update(extra)
    return spec


def require_libraries(module):
    """Fail with the package to install when libvirt-python or lxml is missing on the host."""
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
