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
    what it must. Per domain, for real - one backup, then a re-read (a definition someone else changed or
    undefined meanwhile is reported as C(conflict) or C(vanished) and left alone), then one define with
    C(VIR_DOMAIN_DEFINE_VALIDATE) carrying every rule's change, a re-read and a verification that tells
    libvirt's own normalisation from a loss. A loss restores the backup, but only while the definition is
    still the one the module wrote.
  - A lost connection to libvirt stops the run on that host; the result says per domain what is known
    (C(fixed), C(unknown) - define sent, outcome unknown - or C(not_attempted)) and a rerun converges.
  - Secrets that C(VIR_DOMAIN_XML_SECURE) reveals are redacted in the diff and in every message.
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
  lock_timeout:
    description:
      - Seconds a real run waits for another virtfleet run on the same libvirt URI of the host to finish
        (an advisory lock the kernel releases when a run dies), before failing with nothing changed.
      - Check mode never takes the lock.
    type: float
    default: 300
  parallel:
    description:
      - How many domains a real run changes at once, each through its whole sequence on its own (backup,
        re-read, one define, re-read, verification). libvirt writes and syncs every definition it is given,
        so several defines in flight overlap that wait; the guard re-read still comes right before each
        domain's own define.
      - V(1) changes the domains one by one. Check mode only reads and plans. Findings and domains are
        returned in name order either way. When the connection to libvirt is lost, up to this many domains
        may be in flight (V(unknown)); none starts after it.
      - 1 to 32.
    type: int
    default: 4
"""
