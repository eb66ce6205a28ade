# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of domain definitions before every define (private, no libvirt).

The inactive XML is read with VIR_DOMAIN_XML_SECURE, so a backup can hold graphics passwords:
files are 0600 in a 0700 directory.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest

DEFAULT_BACKUP_DIR = "/var/lib/virtfleet/backups"


def prepare_backup_dir(backup_dir):
    """Create ``backup_dir`` (0700) or fail, before anything is changed."""
    if not backup_dir or not os.path.isabs(backup_dir):
        raise InvalidRequest("backup_dir must be an absolute path, got %r. Nothing was changed." % (backup_dir,))
    try:
        os.makedirs(backup_dir, mode=0o700, exist_ok=True)
        os.chmod(backup_dir, 0o700)
        writable = os.access(backup_dir, os.W_OK | os.X_OK)
    except OSError as exc:
        writable, reason = False, str(exc)
    else:
        reason = "not writable"
    if not writable:
        raise InvalidRequest("Cannot use backup_dir %s (%s). Nothing was changed; point backup_dir at a "
                             "writable absolute directory." % (backup_dir, reason), backup_dir=backup_dir)
    return backup_dir


def write_backup(backup_dir, name, uuid, xml_text):
    """Write one backup file and return its path (never overwrites an existing file)."""
    prepare_backup_dir(backup_dir)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = os.path.join(backup_dir, "%s-%s-%s.xml" % (safe, uuid, stamp))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(xml_text)
    except OSError as exc:
        raise InvalidRequest("Cannot write the backup of %s to %s (%s). Nothing was changed."
                             % (name, path, exc), backup_dir=backup_dir)
    return path
