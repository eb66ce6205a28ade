"""Shared helpers of the fleet-scale benchmarks (engine_scale.py, engine_window.py, audit_playbook.py).

A benchmark fleet is N inactive domains on the lab daemon named ``vfbench-<tag>-NNNNN`` (``tag``
is random per run, so two runs never touch each other's domains). Every domain is built so that
both rules fire and libvirt 9.0 accepts the fix: no device has an alias (aliases rule: 2 disks and
1 NIC to alias) and both disks have ``io='threads'`` with no cache while the policy asks
``cache=none`` (disk_io rule; threads + none is valid, so the one define per domain is accepted).

Other engineers' tests restart the shared libvirtd now and then: every helper reconnects, and
:func:`retry` redoes a measurement interrupted by a restart (the benchmarks print when it did).

Only the benchmark's own domains are ever selected: :func:`only_prefix` gives ``exclude`` globs
that exclude every name not starting with the fleet's prefix (other engineers' domains on the
shared daemon are never read, let alone defined). Domains are undefined at the end, also on
Ctrl-C (``Fleet`` is a context manager).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid as uuidlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
_LINK = os.path.join(COLLECTIONS, "ansible_collections", "virtfleet", "libvirt")
if not os.path.exists(_LINK):  # what `make collection` / tests/conftest.py do
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(ROOT, _LINK)

import libvirt  # noqa: E402
from lxml import etree  # noqa: E402

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import ConnectionFailed, ConnectionLost  # noqa: E402

LAB_ENV = "/run/virtfleet-lab.env"
PREFIX = "vfbench-"
IMAGES = "/var/lib/libvirt/images/vfbench"   # never created: inactive domains need no image files
POLICY = {"disk_io": {"io": "keep", "cache": "none"},
          "aliases": {"device_types": ["disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel"]}}
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def lab_env():
    env = {"LIBVIRT_URI": "qemu:///system", "LIBVIRT_DOMAIN_TYPE": "qemu"}
    if os.path.exists(LAB_ENV):
        with open(LAB_ENV, encoding="utf-8") as handle:
            env.update(line.strip().split("=", 1) for line in handle if "=" in line)
    return env


def domain_xml(name, domain_type="qemu", index=0, uuid=None):
    """q35, no OS, 2 virtio-scsi/virtio disks with io='threads' and no cache, 1 user NIC, no aliases."""
    mac = "52:54:00:%02x:%02x:%02x" % ((index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)
    disks = "".join(
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='raw' io='threads'/>\n"
        "      <source file='%s/%s-%s.img'/>\n"
        "      <target dev='%s' bus='%s'/>\n"
        "    </disk>\n" % (IMAGES, name, dev, dev, bus) for dev, bus in (("vda", "virtio"), ("sda", "scsi")))
    return ("<domain type='%s'>\n  <name>%s</name>\n  <uuid>%s</uuid>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n"
            "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n  <features><acpi/></features>\n"
            "  <devices>\n    <controller type='pci' index='0' model='pcie-root'/>\n%s"
            "    <controller type='scsi' index='0' model='virtio-scsi'/>\n%s"
            "    <interface type='user'><mac address='%s'/><model type='virtio'/></interface>\n"
            "    <memballoon model='none'/>\n  </devices>\n</domain>\n"
            % (domain_type, name, uuid or uuidlib.uuid4(),
               "".join("    <controller type='pci' index='%d' model='pcie-root-port'/>\n" % i for i in range(1, 5)),
               disks, mac))


def only_prefix(prefix):
    """``exclude`` globs (fnmatch) that exclude every domain name not starting with ``prefix``."""
    pats = []
    for i, char in enumerate(prefix):
        if i:
            pats.append(_glob_escape(prefix[:i]))            # a name that is a strict prefix of ours
        pats.append(_glob_escape(prefix[:i]) + "[!%s]*" % char)
    return pats


def _glob_escape(text):
    return "".join("[%s]" % c if c in "*?[]!" else c for c in text)


class Fleet:
    """``with Fleet(uri, n) as fleet:`` defines n benchmark domains; undefines them on exit."""

    def __init__(self, uri, count=0, domain_type=None, tag=None):
        self.uri = uri
        self.domain_type = domain_type or lab_env()["LIBVIRT_DOMAIN_TYPE"]
        self.tag = tag or uuidlib.uuid4().hex[:6]
        self.prefix = "%s%s-" % (PREFIX, self.tag)
        self.conn = _open(uri)
        self.originals = {}          # name -> the XML we defined (the reset state)
        if count:
            self.grow(count)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.destroy()
        return False

    @property
    def names(self):
        return sorted(self.originals)

    @property
    def exclude(self):
        return only_prefix(self.prefix)

    def name(self, index):
        return "%s%05d" % (self.prefix, index)

    def grow(self, count):
        """Define domains until there are ``count``."""
        started = time.monotonic()
        retry(self._grow, self, count)
        return time.monotonic() - started

    def _grow(self, count):
        conn = self._conn()
        for index in range(len(self.originals), count):
            name = self.name(index)
            xml = domain_xml(name, self.domain_type, index)
            conn.defineXML(xml)
            self.originals[name] = xml

    def _conn(self, fresh=False):
        """The connection, reopened when libvirtd was restarted by someone else's tests."""
        if not fresh:
            try:
                self.conn.getLibVersion()   # a round trip: isAlive() can still say yes after a restart
                return self.conn
            except libvirt.libvirtError:
                pass
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass
        self.conn = _open(self.uri)
        return self.conn

    def reset(self):
        """Every domain back to its original definition (same UUID): undefine + define the original XML."""
        retry(self._reset, self)

    def _reset(self):
        conn = self._conn()
        for name, xml in self.originals.items():
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            conn.defineXML(xml)

    def current_xml(self):
        conn = self._conn()
        return {name: conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
                for name in self.names}

    def destroy(self):
        try:
            retry(self._destroy, self, attempts=5)
        except libvirt.libvirtError as exc:
            print("cleanup: %s; undefine %s* by hand" % (exc, self.prefix), file=sys.stderr)
            return
        self.originals.clear()

    def _destroy(self):
        conn = self._conn()
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(self.prefix):
                try:
                    dom.undefine()
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise


class Interrupted(Exception):
    """A measurement that must be redone (the shared libvirtd was restarted under it)."""


def _open(uri, wait=10.0):
    """libvirt.open, waiting up to ``wait`` s for a daemon that is being restarted."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return libvirt.open(uri)
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def retry(func, fleet=None, *args, attempts=3, **kwargs):
    """``func(*args)``, redone (after reconnecting) when libvirtd was restarted under it."""
    for attempt in range(1, attempts + 1):
        try:
            return func(*args, **kwargs)
        except (libvirt.libvirtError, Interrupted, ConnectionLost, ConnectionFailed) as exc:
            if attempt == attempts:
                raise
            print("  (interrupted: %s; libvirtd restarted by another test run? redoing it)"
                  % str(exc).splitlines()[0][:200], flush=True)
            time.sleep(1.0)
            if fleet is not None:
                fleet._conn(fresh=True)
    return None


def floor(uri, prefix, reads=2):
    """The bare libvirt floor: open, listAllDomains, ``reads`` XMLDesc per domain + lxml parse, close."""
    conn = _open(uri)
    try:
        count = 0
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(prefix):
                continue
            for flags in (libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE,
                          libvirt.VIR_DOMAIN_XML_SECURE)[:reads]:
                etree.fromstring(dom.XMLDesc(flags).encode("utf-8"))
            count += 1
        return count
    finally:
        conn.close()


def run_engine(uri, names=None, exclude=None, check_mode=True, backup_dir="/nonexistent-not-used", adapter=None,
               policy=None, lock=None, workers=4):
    """What virt_policy's run_rules does, without Ansible: connect, versions, rules, Engine.run, close."""
    from ansible_collections.virtfleet.libvirt.plugins.module_utils import _engine, _rules
    from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import Adapter

    policy = POLICY if policy is None else policy
    _rules.build(policy)
    adapter = adapter or Adapter(uri)
    try:
        lib, hv_type, hv = adapter.versions()
        rules = _rules.build(policy, host={"libvirt": lib, "hypervisor": hv_type, "hypervisor_version": hv})
        return _engine.Engine(adapter, rules, check_mode=check_mode, backup_dir=backup_dir, lock=lock,
                              workers=workers).run(
            names or [], exclude or [])
    finally:
        adapter.close()


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    value = func(*args, **kwargs)
    return time.perf_counter() - started, value


def median(values):
    return statistics.median(values) if values else float("nan")


def pct(values, q):
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_kib():
    """(current RSS, peak RSS since the last reset_peak()) of this process in KiB, from /proc."""
    cur = peak = 0
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return cur, peak


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")


class DefineCounter:
    """Counts libvirt's own DEFINED lifecycle events per domain name with a prefix (any process's defines).

    An independent count of the defines that reached libvirtd: ``with DefineCounter(uri, prefix) as c:
    ...; c.count``.
    """

    _loop_started = False

    def __init__(self, uri, prefix):
        self.uri, self.prefix = uri, prefix
        self.names = []
        self._lock = threading.Lock()
        DefineCounter._start_loop()
        self.conn = self._cb = None
        self._connect()

    def _connect(self):
        if self.conn is not None:
            try:
                self.conn.getLibVersion()
                return
            except libvirt.libvirtError:
                pass
        self.conn = _open(self.uri)
        self._cb = self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None)

    @classmethod
    def _start_loop(cls):
        if not cls._loop_started:
            libvirt.virEventRegisterDefaultImpl()
            threading.Thread(target=cls._run, daemon=True).start()
            cls._loop_started = True

    @staticmethod
    def _run():
        while True:
            libvirt.virEventRunDefaultImpl()

    def _event(self, _conn, dom, event, _detail, _opaque):
        if event == libvirt.VIR_DOMAIN_EVENT_DEFINED and dom.name().startswith(self.prefix):
            with self._lock:
                self.names.append(dom.name())

    def reset(self):
        """Start counting from 0 (on a fresh connection when the daemon was restarted)."""
        self._connect()
        with self._lock:
            self.names = []

    def settle(self, expected=None, timeout=5.0):
        """Wait until events stop arriving (or ``expected`` arrived); return the count."""
        deadline, last, seen = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.names)
            if expected is not None and n >= expected:
                time.sleep(0.2)
                return len(self.names)
            if n != last:
                last, seen = n, time.monotonic()
            elif time.monotonic() - seen > 0.5:
                break
            time.sleep(0.05)
        return len(self.names)

    @property
    def count(self):
        return len(self.names)

    def close(self):
        try:
            self.conn.domainEventDeregisterAny(self._cb)
            self.conn.close()
        except libvirt.libvirtError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()
        return False


def ansible_env(extra=None):
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS, env.get("PYTHONPATH")) if p)
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "False"
    env.update(extra or {})
    return env


def write_inventory(path, uri, exclude=None, domains=None, **hostvars):
    """One host, localhost, local connection, the venv's python, only the given selection."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": VENV_PYTHON, "virtfleet_uri": uri}
    if exclude:
        host["virtfleet_exclude"] = list(exclude)
    if domains:
        host["virtfleet_domains"] = list(domains)
    host.update(hostvars)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"all": {"children": {"hypervisors": {"hosts": {"localhost": host}}}}}, handle, indent=1)
    return path


def run_playbook(playbook, inventory, args=(), env=None, cwd=None):
    """ansible-playbook; returns (seconds, CompletedProcess)."""
    cmd = [ANSIBLE_PLAYBOOK, "-i", inventory, playbook] + list(args)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), cwd=cwd or ROOT, check=False)
    return time.perf_counter() - started, proc


def table(rows, headers):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(r):
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
