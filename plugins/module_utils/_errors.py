# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the virtfleet collection (private).

Everything below a module's ``main()`` raises one of these; only ``main()`` turns
them into ``fail_json``. Every message names the problem *and* what to do about it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class VirtFleetError(Exception):
    """Base class. ``details`` is merged into the module's failure result."""

    def __init__(self, msg, **details):
        super(VirtFleetError, self).__init__(msg)
        self.msg = msg
        self.details = details


class InvalidRequest(VirtFleetError):
    """The task's options cannot be honoured as given (nothing was changed)."""


class ConnectionFailed(VirtFleetError):
    """The libvirt URI could not be opened."""


class DomainNotFound(VirtFleetError):
    """One or more requested domains do not exist on the host."""


class UnsupportedByHost(VirtFleetError):
    """The host's libvirt or hypervisor is too old for the requested setting."""


class XMLError(VirtFleetError):
    """Domain XML could not be parsed or patched."""


class LibvirtCallFailed(VirtFleetError):
    """A libvirt call failed; ``details`` carries the libvirt error code."""


class DefineFailed(LibvirtCallFailed):
    """libvirt refused the patched definition; the old definition is untouched."""


class VerificationFailed(VirtFleetError):
    """Re-reading after define showed an unplanned difference; the backup was restored."""


class DeviceMissing(LibvirtCallFailed):
    """libvirt says the device is not there (already detached)."""


class UnplugPending(LibvirtCallFailed):
    """QEMU is still unplugging the device from an earlier request ("already in the process of unplug")."""


class DetachFailed(VirtFleetError):
    """A device could not be detached; ``details['devices']`` says what state each device is in."""


class ConnectionLost(LibvirtCallFailed):
    """The connection to libvirt broke mid-run (daemon killed or restarted, socket gone).

    Whatever was in flight has an unknown outcome; nothing more is attempted on that host.
    """


class DomainVanished(LibvirtCallFailed):
    """The domain was undefined (or destroyed, if transient) by someone else while this run worked on it."""


class BackupFailed(VirtFleetError):
    """The backup of a definition could not be written durably; that domain is not changed."""


class HostLocked(VirtFleetError):
    """Another virtfleet run holds this host's lock for longer than the run is willing to wait."""
