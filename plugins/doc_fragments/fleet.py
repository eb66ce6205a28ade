# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by every virtfleet module that works on a host's domains."""

    DOCUMENTATION = r"""
requirements:
  - libvirt-python (C(python3-libvirt)) for the Python interpreter Ansible uses on the host
  - lxml (C(python3-lxml))
notes:
  - The module reads libvirt's own inactive domain XML with C(VIR_DOMAIN_XML_SECURE) and patches only
    what it must, then redefines it with C(VIR_DOMAIN_DEFINE_VALIDATE), re-reads it and checks that
    nothing but the planned change happened; otherwise it restores the backup and fails.
  - It never undefines, regenerates, starts, stops or restarts a domain. Changes to a running domain
    reach its persistent definition and are reported with C(pending_restart) until its next cold boot.
options:
  uri:
    description:
      - libvirt connection URI of the host, for example V(qemu:///system) or
        V(qemu+ssh://root@hv1/system).
      - V(test:///<absolute path to a node XML>) uses libvirt's built-in test driver; it is good for
        read-only audits and check mode, not for changes that must persist.
    type: str
    default: qemu:///system
  domains:
    description:
      - Domains to work on, by name or UUID.
      - Empty (the default) selects every domain of the host, running or not.
      - Unknown names fail the task before anything is changed.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Shell-style patterns (C(fnmatch), case-sensitive) of domain names to leave alone, applied after
        O(domains).
    type: list
    elements: str
    default: []
"""

    BACKUP = r"""
options:
  backup_dir:
    description:
      - Directory on the host where the previous inactive definition of every domain is saved
        before it is redefined.
      - Created with mode V(0700); backups are V(0600) because they contain graphics passwords.
      - The path of each backup is returned in RV(domains[].backup).
    type: path
    default: /var/lib/virtfleet/backups
"""
