# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that talks to libvirt (private).

No other file of the collection imports ``libvirt``. Everything here raises the typed errors
of ``_errors``; nothing here knows about Ansible.

Rules this adapter keeps:
- libvirt's XML is canonical: domains are never undefined or regenerated, only redefined from
  libvirt's own inactive XML with minimal edits.
- Inactive XML is read with VIR_DOMAIN_XML_SECURE: without it graphics passwords are missing
  from the XML and a redefine would silently drop them.
- Every define is preceded by a 0600 backup of the old definition, validated by libvirt
  (VIR_DOMAIN_DEFINE_VALIDATE), re-read, and verified; an unplanned difference restores the
  backup and fails.
"""

from __future__ import annotations

import fnmatch
import re
import sys
import threading

try:
    import libvirt

    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = exc

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    ConnectionFailed,
    ConnectionLost,
    DefineFailed,
    DeviceMissing,
    DomainNotFound,
    DomainVanished,
    InvalidRequest,
    LibvirtCallFailed,
    UnplugPending,
)
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

DEFAULT_URI = "qemu:///system"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _version_tuple(number):
    # libvirt encodes versions as major * 1,000,000 + minor * 1,000 + micro
    return (number // 1000000, (number // 1000) % 1000, number % 1000)


# virDomainState -> the words virsh uses
_STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 5: "shut off",
           6: "crashed", 7: "suspended"}
_ACTIVE_STATES = ("running", "blocked", "paused", "shutting down", "suspended")


def _code(exc):
    try:
        return exc.get_error_code()
    except Exception:  # pragma: no cover - defensive, libvirtError always has it
        return None


# Error codes that only a broken connection produces. Anything else is checked with
# virConnectIsAlive(), which is false once the socket to the daemon is closed.
_LOST_CODES = frozenset(getattr(libvirt, name) for name in ("VIR_ERR_NO_CONNECT", "VIR_ERR_INVALID_CONN")
                        if libvirt is not None and hasattr(libvirt, name))


class Adapter:
    """A libvirt connection and the few operations the collection needs."""

    def __init__(self, uri=DEFAULT_URI):
        if not HAS_LIBVIRT:
            raise ConnectionFailed(
                "The libvirt Python bindings are not importable by %s (%s): install python3-libvirt "
                "(Debian/Ubuntu/Fedora/RHEL) for that interpreter, or 'pip install libvirt-python', or set "
                "ansible_python_interpreter to a Python that has them." % (sys.executable, LIBVIRT_IMPORT_ERROR))
        # libvirt's default error handler prints every error to stderr, which would corrupt
        # the module's JSON output; errors reach us as exceptions anyway.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.uri = uri
        self._transient = None   # UUIDs of transient domains, known after select()
        self._handles = {}       # UUID -> domain handle of the selection
        self._inactive = set()   # UUIDs listed as not running by select(), until their first read
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise ConnectionFailed(
                "Cannot connect to libvirt at %r: %s. Check that the URI is right and the daemon is "
                "running on the host (e.g. 'systemctl start libvirtd' or 'virtqemud', or 'libvirtd -d' "
                "without systemd; in this repository 'make lab'), and that the user may use the socket."
                % (uri, exc), uri=uri, libvirt_code=_code(exc))
        if self.conn is None:  # pragma: no cover - old bindings returned None
            raise ConnectionFailed("Cannot connect to libvirt at %r." % uri, uri=uri)

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass

    # --- host facts ----------------------------------------------------------------------

    def versions(self):
        """(libvirt version, hypervisor name, hypervisor version) as tuples of ints."""
        try:
            lib = _version_tuple(self.conn.getLibVersion())
            hv_type = self.conn.getType()
            hv = _version_tuple(self.conn.getVersion())
        except libvirt.libvirtError as exc:
            raise self._error(exc, "Cannot read versions from %s" % self.uri)
        return lib, hv_type, hv

    def capabilities(self):
        """virConnectGetCapabilities(): the host's capabilities XML as libvirt returns it."""
        try:
            return self.conn.getCapabilities()
        except libvirt.libvirtError as exc:
            raise self._error(exc, "Cannot read the capabilities of %s" % self.uri)

    def domain_capabilities(self, emulator=None, arch=None, machine=None, virttype=None):
        """virConnectGetDomainCapabilities(): the domain capabilities XML for one emulator/arch/machine/virttype.

        None when libvirt cannot answer for that combination (no such machine or virt type: an
        unsupported combination is a fact of the host, not an error); other failures raise.
        """
        try:
            return self.conn.getDomainCapabilities(emulator, arch, machine, virttype, 0)
        except libvirt.libvirtError as exc:
            if self.lost(exc):
                raise self._error(exc, "Cannot read the domain capabilities of %s" % self.uri)
            return None

    def hostname(self):
        try:
            return self.conn.getHostname()
        except libvirt.libvirtError as exc:
            raise self._error(exc, "Cannot read the host name of %s" % self.uri)

    def host_facts(self):
        lib, hv_type, hv = self.versions()
        return {"uri": self.uri, "libvirt_version": ".".join(map(str, lib)), "hypervisor": hv_type,
                "hypervisor_version": ".".join(map(str, hv))}

    # --- domain selection ------------------------------------------------------------------

    def select(self, names=None, exclude=None, option="domains"):
        """Domains by name or UUID (all when ``names`` is empty), minus ``exclude`` globs.

        Unknown names fail all together, before anything is read or changed.
        """
        exclude = list(exclude or [])
        try:
            if names:
                doms, missing, seen = [], [], set()
                for name in names:
                    dom = self._lookup(name)
                    if dom is None:
                        missing.append(name)
                    elif dom.UUIDString() not in seen:
                        seen.add(dom.UUIDString())
                        doms.append(dom)
                if missing:
                    known = sorted(d.name() for d in self.conn.listAllDomains(0))
                    shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
                    raise DomainNotFound(
                        "Domain(s) not found on %s: %s. Known domains: %s. Fix the '%s' option (names or "
                        "UUIDs)%s." % (self.uri, ", ".join(missing), shown or "(none)", option,
                                       " or leave it empty to select every domain" if option == "domains" else ""),
                        missing=missing, uri=self.uri)
            else:
                doms = self.conn.listAllDomains(0)
            # Two listings tell which domains run and which are transient, so the first read of a domain
            # that is not running costs one call (its inactive XML) instead of four. Re-reads ask again.
            self._transient = {d.UUIDString() for d in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
            self._inactive = {d.UUIDString() for d in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE)}
        except libvirt.libvirtError as exc:
            raise self._error(exc, "Cannot list domains on %s" % self.uri)
        # One regular expression for every exclude glob (fnmatch's own translation), one name() per domain.
        excluded = re.compile("|".join("(?:%s)" % fnmatch.translate(pat) for pat in exclude)).match if exclude else None
        named = sorted(((d.name(), d) for d in doms), key=lambda pair: pair[0])
        doms = [d for name, d in named if excluded is None or not excluded(name)]
        self._handles = {d.UUIDString(): d for d in doms}
        return doms

    @staticmethod
    def name_of(dom):
        return dom.name()

    @staticmethod
    def uuid_of(dom):
        return dom.UUIDString()

    def _lookup(self, key):
        """The domain ``key`` names: by name, or by UUID in any spelling libvirt accepts.

        A key that is one domain's name and another domain's UUID is ambiguous: refused, naming both.
        """
        by_name = self._try(self.conn.lookupByName, key)
        by_uuid = self._try(self.conn.lookupByUUIDString, key) if _UUID.match(key) else None
        if by_name is not None and by_uuid is not None and by_name.UUIDString() != by_uuid.UUIDString():
            raise InvalidRequest(
                "%r is ambiguous on %s: it is the name of domain %s (UUID %s) and the UUID of domain %s. Nothing "
                "was changed; select %s by its UUID %s, or %s by its UUID in another spelling (%s), which no "
                "domain is named." % (key, self.uri, by_name.name(), by_name.UUIDString(), by_uuid.name(),
                                      by_name.name(), by_name.UUIDString(), by_uuid.name(),
                                      _respell(by_uuid.UUIDString(), key)), ambiguous=key)
        return by_name if by_name is not None else by_uuid

    def _try(self, lookup, key):
        try:
            return lookup(key)
        except libvirt.libvirtError as exc:
            if _code(exc) not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                raise self._error(exc, "Cannot look up domain %r on %s" % (key, self.uri))
        return None

    # --- failures ---------------------------------------------------------------------------

    def lost(self, exc=None):
        """Whether the connection is gone (daemon killed or restarted, socket closed)."""
        if exc is not None and _code(exc) in _LOST_CODES:
            return True
        try:
            return not self.conn.isAlive()
        except Exception:
            return True

    def _error(self, exc, what, error=LibvirtCallFailed, **details):
        """The typed error for a failed call: ConnectionLost when the connection is gone."""
        if self.lost(exc):
            return ConnectionLost(
                "%s: the connection to libvirt at %s was lost (%s). The daemon was stopped or restarted; "
                "start it again and rerun (the run converges)." % (what, self.uri, exc),
                libvirt_code=_code(exc), uri=self.uri, **details)
        return error("%s: %s" % (what, exc), libvirt_code=_code(exc), **details)

    # --- reading ---------------------------------------------------------------------------

    def read(self, dom):
        """libvirt's own XML of one domain: inactive (SECURE) and, when running, live.

        Two calls for a domain that is not running (its state, its inactive XML), like the bare
        floor; a running one adds its live XML. Raises DomainVanished when the domain no longer
        exists, ConnectionLost when the connection is gone.
        """
        try:
            uuid = dom.UUIDString()
            if uuid in self._inactive:
                self._inactive.discard(uuid)   # listed as not running just now: valid for this first read only
                run_state, active = "shut off", False
            else:
                run_state = _STATES.get(dom.state()[0], "unknown")
                # shut off: not active; "no state"/"crashed" are ambiguous: ask libvirt.
                active = False if run_state == "shut off" else (
                    True if run_state in _ACTIVE_STATES else bool(dom.isActive()))
            if self._transient is None or (active and uuid in self._transient):
                persistent = bool(dom.isPersistent())
            else:
                persistent = uuid not in self._transient
            flags = libvirt.VIR_DOMAIN_XML_SECURE
            # A transient domain has no inactive definition: its INACTIVE XML is the live one.
            inactive = dom.XMLDesc(flags | libvirt.VIR_DOMAIN_XML_INACTIVE)
            live = dom.XMLDesc(flags) if active else None
            return DomainState(name=dom.name(), uuid=uuid, active=active, persistent=persistent,
                               inactive_xml=inactive, live_xml=live, state=run_state)
        except libvirt.libvirtError as exc:
            raise self._read_error(exc, dom)

    def definition(self, uuid):
        """The persistent definition (inactive XML, SECURE) of the domain with ``uuid`` as text: one call.

        What the guard before a define compares with the definition it planned from; the run state
        and the live XML are not read. DomainVanished when the domain is gone.
        """
        dom = self._handle(uuid)
        try:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError as exc:
            raise self._read_error(exc, dom)

    def _read_error(self, exc, dom):
        """The error to raise for a failed read of ``dom``: DomainVanished, ConnectionLost or a read failure."""
        if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainVanished("Domain %s was undefined on %s while this run worked on it: %s"
                                  % (_name(dom), self.uri, exc), libvirt_code=_code(exc))
        return self._error(exc, "Cannot read domain %s on %s" % (_name(dom), self.uri))

    def reread(self, uuid):
        """The current state of the domain with ``uuid`` (DomainVanished when it is gone).

        The handle from the selection is reused (libvirt resolves it by UUID on every call).
        """
        return self.read(self._handle(uuid))

    def _handle(self, uuid):
        dom = self._handles.get(uuid)
        if dom is None:
            try:
                dom = self.conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError as exc:
                if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                    raise DomainVanished("Domain %s no longer exists on %s: %s" % (uuid, self.uri, exc),
                                         libvirt_code=_code(exc))
                raise self._error(exc, "Cannot look up domain %s on %s" % (uuid, self.uri))
        return dom

    # --- writing ---------------------------------------------------------------------------

    def define(self, xml_text, validate=True):
        """defineXMLFlags(VALIDATE): DefineFailed when libvirt refuses it (nothing changed),
        ConnectionLost when the connection broke (the outcome is unknown)."""
        try:
            self.conn.defineXMLFlags(xml_text, libvirt.VIR_DOMAIN_DEFINE_VALIDATE if validate else 0)
        except libvirt.libvirtError as exc:
            if self.lost(exc):
                raise self._error(exc, "The define was sent")
            raise DefineFailed(str(exc), libvirt_code=_code(exc), transient=_schema_not_loaded(exc))


def _schema_not_loaded(exc):
    """libvirtd could not load its own RelaxNG schema for this define, so our XML was never checked.

    Seen once on libvirt 11.3 with four validating defines in flight ("Unable to parse RelaxNG schema
    '.../domain.rng': Error type 'int' is not exported by type library ..."): the daemon parses the
    schema file at every validating define, and that parse failed, not our definition.
    """
    return _code(exc) == libvirt.VIR_ERR_INTERNAL_ERROR and "RelaxNG schema" in str(exc)


def _respell(uuid, key):
    """``uuid`` spelled differently from ``key`` (libvirt accepts any case, with or without dashes)."""
    for candidate in (uuid.upper(), uuid.replace("-", ""), uuid.upper().replace("-", "")):
        if candidate != key:
            return candidate
    return uuid  # pragma: no cover - one of the three always differs


def _name(dom):
    try:
        return dom.name()
    except Exception:  # pragma: no cover - the handle outlived its connection
        return "(unknown)"


# --- events and detach --------------------------------------------------------------------------

# ConnectionLost, imported here so that this section does not depend on the import block above.
from ansible_collections.virtfleet.libvirt.plugins.module_utils import _errors as _detach_errors  # noqa: E402


class _EventLoop:
    """libvirt's default event loop in a daemon thread, for as long as one module runs.

    virEventRegisterDefaultImpl() must run before the connection is opened, or the connection
    never delivers events (nor close callbacks); it can be registered only once per process.
    """

    registered = False
    thread = None
    stopping = False
    users = 0  # adapters using the loop: the last one to close stops it

    @classmethod
    def start(cls):
        cls.users += 1
        if not cls.registered:
            libvirt.virEventRegisterDefaultImpl()
            cls.registered = True
        if cls.thread is None or not cls.thread.is_alive():
            cls.stopping = False
            cls.thread = threading.Thread(target=cls._run, name="libvirt-events", daemon=True)
            cls.thread.start()

    @classmethod
    def _run(cls):
        while not cls.stopping:
            libvirt.virEventRunDefaultImpl()

    @classmethod
    def stop(cls):
        cls.users = max(cls.users - 1, 0)
        if cls.thread is None or cls.users:
            return
        cls.stopping = True
        # wake virEventRunDefaultImpl() up with a one-shot timer so the thread sees the flag
        libvirt.virEventAddTimeout(0, lambda timer, _opaque: libvirt.virEventRemoveTimeout(timer), None)
        cls.thread.join(5)
        cls.thread = None


class Waiter:
    """The outcome of one device's live detach, as announced by libvirt's device events.

    Outcomes: "removed" (DEVICE_REMOVED), "failed" (DEVICE_REMOVAL_FAILED), "lost" (the connection
    closed: no event can arrive any more). The first outcome wins.
    """

    def __init__(self, alias):
        self.alias = alias
        self.outcome = None   # "removed" | "failed" | "lost"
        self._event = threading.Event()

    def set(self, outcome):
        if self.outcome is None:
            self.outcome = outcome
        self._event.set()

    def wait(self, timeout):
        self._event.wait(timeout)
        return self.outcome


class DeviceEvents:
    """DEVICE_REMOVED / DEVICE_REMOVAL_FAILED of one domain, dispatched to waiters by alias.

    ``connection_closed()`` (the adapter's close callback) wakes every waiter with "lost", and a
    waiter registered after that is "lost" at once: nobody waits for an event that cannot come.
    """

    def __init__(self, conn, dom):
        self._conn = conn
        self._waiters = {}
        self._lock = threading.Lock()
        self.lost = None  # the close reason once the connection closed
        self._ids = [
            conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                        lambda _c, _d, alias, _o: self._dispatch(alias, "removed"), None),
            conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                                        lambda _c, _d, alias, _o: self._dispatch(alias, "failed"), None),
        ]

    def expect(self, alias):
        """Register the waiter for ``alias``; call this BEFORE the detach request."""
        with self._lock:
            waiter = self._waiters.setdefault(alias, Waiter(alias))
            lost = self.lost is not None
        if lost:
            waiter.set("lost")
        return waiter

    def _dispatch(self, alias, outcome):
        with self._lock:
            waiter = self._waiters.get(alias)
        if waiter is not None:
            waiter.set(outcome)

    def connection_closed(self, reason="closed"):
        with self._lock:
            self.lost = reason
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.set("lost")

    def close(self):
        for cb_id in self._ids:
            try:
                self._conn.domainEventDeregisterAny(cb_id)
            except libvirt.libvirtError:  # connection already gone
                pass


class DetachAdapter(Adapter):
    """An Adapter with the event loop running, for detaching devices.

    Every libvirt failure of a detach call is classified: ConnectionLost when the connection is
    gone (see ``lost``), else the usual typed errors. A close callback on the connection wakes
    the live-detach waiters at once when the daemon goes away (killed, restarted, socket closed).
    """

    # libvirt error codes and texts a broken connection produces (remote driver, libvirt 9.0):
    # "internal error: client socket is closed" is code 1 (VIR_ERR_INTERNAL_ERROR), so the text counts too.
    LOST_CODE_NAMES = ("VIR_ERR_SYSTEM_ERROR", "VIR_ERR_RPC", "VIR_ERR_NO_CONNECT", "VIR_ERR_INVALID_CONN")
    LOST_TEXTS = ("client socket is closed", "End of file while reading data", "Broken pipe",
                  "Connection reset by peer", "Cannot write data", "Cannot recv data")
    CLOSE_REASONS = {0: "error", 1: "end of file", 2: "keepalive timeout", 3: "client closed"}
    _closed_reason = None   # set by the close callback
    _close_cb = False       # registered on self.conn

    def __init__(self, uri=DEFAULT_URI):
        if HAS_LIBVIRT:
            _EventLoop.start()  # before the connection opens
        self._event_sets = []
        self._close_lock = threading.Lock()
        super(DetachAdapter, self).__init__(uri)
        try:
            self.conn.registerCloseCallback(self._on_close, None)
            self._close_cb = True
        except libvirt.libvirtError:  # pragma: no cover - every remote/qemu connection supports it
            pass

    def close(self):
        if self._close_cb:
            try:
                self.conn.unregisterCloseCallback()
            except libvirt.libvirtError:
                pass
            self._close_cb = False
        super(DetachAdapter, self).close()
        _EventLoop.stop()

    # --- a lost connection ----------------------------------------------------------------------

    def _watchers(self):
        """(lock, list of DeviceEvents to wake on close); created lazily for adapters built bare."""
        if "_event_sets" not in vars(self):
            self._event_sets, self._close_lock = [], threading.Lock()
        return self._close_lock, self._event_sets

    def _on_close(self, _conn, reason, _opaque):
        """libvirt's close callback (event loop thread): the daemon is gone; wake every waiter."""
        lock, watchers = self._watchers()
        with lock:
            self._closed_reason = self.CLOSE_REASONS.get(reason, "reason %s" % reason)
            sets = list(watchers)
        for events in sets:
            events.connection_closed(self._closed_reason)

    def lost(self, exc=None):
        """Whether the connection is gone: closed (callback seen), a lost-connection error code or
        text in ``exc``, or virConnectIsAlive() false (or failing)."""
        if self._closed_reason is not None:
            return True
        if exc is not None:
            code = _code(exc)
            if code is not None and any(code == getattr(libvirt, n, None) for n in self.LOST_CODE_NAMES):
                return True
            if any(t.lower() in str(exc).lower() for t in self.LOST_TEXTS):
                return True
        conn = getattr(self, "conn", None)
        if conn is None:
            return False
        try:
            return not conn.isAlive()
        except Exception:
            return True

    def _failed(self, exc, what):
        """The typed error for a failed detach-side call."""
        if self.lost(exc):
            return _detach_errors.ConnectionLost(
                "%s: the connection to libvirt at %s was lost (%s)" % (what, self.uri, exc),
                libvirt_code=_code(exc), uri=self.uri, close_reason=self._closed_reason)
        return LibvirtCallFailed("%s: %s" % (what, exc), libvirt_code=_code(exc))

    # --- calls ------------------------------------------------------------------------------------

    def lookup_uuid(self, uuid):
        try:
            return self.conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            raise self._failed(exc, "Domain %s vanished from %s" % (uuid, self.uri))

    def events(self, dom):
        """DeviceEvents of ``dom``, woken by this adapter's close callback."""
        try:
            events = DeviceEvents(self.conn, dom)
        except libvirt.libvirtError as exc:
            raise self._failed(exc, "Cannot register for device events")
        lock, watchers = self._watchers()
        with lock:
            watchers.append(events)
            reason = self._closed_reason
        if reason is not None:  # closed while registering
            events.connection_closed(reason)
        return events

    def detach(self, dom, alias, device_xml, live):
        """One detach request. Prefers detachDeviceAlias (returns at once; detachDeviceFlags(LIVE)
        blocks up to 5 s and then returns success even when the guest has not released the device).
        Only user aliases (ua-) can be used for the persistent definition: automatic aliases exist
        only in the live domain. ConnectionLost: the request may or may not have reached the daemon."""
        flag = libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG
        by_alias = bool(alias) and (live or alias.startswith("ua-"))
        try:
            if by_alias:
                dom.detachDeviceAlias(alias, flag)
            else:
                dom.detachDeviceFlags(device_xml, flag)
        except libvirt.libvirtError as exc:
            text = str(exc)
            if _code(exc) == libvirt.VIR_ERR_DEVICE_MISSING or "no device found with alias" in text:
                raise DeviceMissing(text, libvirt_code=_code(exc))
            # Both mean QEMU is still working on an earlier request: pending, not failed.
            # ("guest is busy (power indicator blinking)": native PCIe, until pciehp's 5 s pass.)
            if "already in the process of unplug" in text or "power indicator blinking" in text:
                raise UnplugPending(text, libvirt_code=_code(exc))
            if self.lost(exc):
                raise self._failed(exc, "The %s detach request" % ("live" if live else "persistent"))
            raise LibvirtCallFailed(text, libvirt_code=_code(exc))
        return "alias" if by_alias else "xml"

    def live_xml(self, dom):
        try:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE) if dom.isActive() else None
        except libvirt.libvirtError as exc:
            raise self._failed(exc, "Cannot read the live XML of %s" % self._dom_name(dom))

    def persistent_xml(self, dom):
        """The inactive definition (SECURE), re-read to verify a persistent detach."""
        try:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError as exc:
            raise self._failed(exc, "Cannot re-read the persistent definition of %s" % self._dom_name(dom))

    @staticmethod
    def _dom_name(dom):
        try:
            return dom.name()
        except Exception:  # the handle outlived its connection
            return "(domain)"
