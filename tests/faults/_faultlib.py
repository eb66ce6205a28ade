"""Helpers of the fault suite (tests/faults): the fault daemon of scripts/faultd.sh, busybox guests on
it, and running a module while the daemon is killed or restarted. The fixtures are in conftest.py,
whose docstring documents the API; this module has no pytest fixtures.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
import uuid

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
_INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
if _INTEGRATION not in sys.path:  # reuse the integration suite's helpers (module runner, guest XML, console)
    sys.path.insert(0, _INTEGRATION)

from _detach_lib import Console, LabError, build_guest, detach_domain_xml, disk_xml  # noqa: E402
from _itlib import MODULES, ROOT, TARGET, ModuleRun, module_env, parse, run_module  # noqa: E402

FAULTD = os.path.join(ROOT, "scripts", "faultd.sh")
PREFIX = "vff-"
# One pytest session at a time owns the fault daemon: tests kill it, which would break another
# session's tests on it. A second session waits for this lock. Each target has its own daemon
# (VIRTFLEET_TARGET, tests/_target.py), hence its own lock.
SESSION_LOCK = "/run/virtfleet-faultd-tests%s.lock" % ("-" + TARGET.name if TARGET.is_gen else "")
LOCK_WAIT = 1800.0
LIVE_AND_CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class FaultdError(RuntimeError):
    """scripts/faultd.sh failed; the message carries its output."""


def faultd_sh(*args, timeout=300):
    env = dict(os.environ, VIRTFLEET_TARGET=TARGET.name)
    proc = subprocess.run(["bash", FAULTD, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)
    if proc.returncode != 0:
        raise FaultdError("scripts/faultd.sh %s failed (rc %d):\nstdout:\n%s\nstderr:\n%s"
                          % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


class SessionLock:
    """An exclusive flock held for the whole pytest session (see SESSION_LOCK)."""

    def __init__(self, path=SESSION_LOCK, wait=LOCK_WAIT):
        self.path, self.wait, self._fd = path, wait, None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        end = time.monotonic() + self.wait
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(fd)
                    raise FaultdError("another pytest session has held %s for %.0f s (it owns the fault daemon)"
                                      % (self.path, self.wait))
                if not announced:
                    sys.stderr.write("[faults] waiting for %s: another session uses the fault daemon\n" % self.path)
                    announced = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, ("%d\n" % os.getpid()).encode())
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _passwd_entry(path, user):
    """(uid, gid, home) of ``user`` in the passwd file ``path`` (a generation tree's own)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3]), fields[5]
    raise FaultdError("no user %s in %s: run scripts/faultd.sh up" % (user, path))


class FaultDaemon:
    """The session libvirtd of user vffault (scripts/faultd.sh), seen from root. See conftest.py."""

    domain_type = "qemu"  # TCG: a Linux guest never boots under this machine's nested KVM
    prefix = PREFIX

    def __init__(self, target=TARGET):
        self.target = target
        self.uri = faultd_sh("uri").stdout.strip()          # the test's own connection
        self.module_uri = faultd_sh("module-uri").stdout.strip()   # what a module on the host uses
        self.user = "vffault"
        if target.is_gen:   # the user of the generation's tree; images in its shared directory
            self.uid, self.gid, home = _passwd_entry(target.path("/etc/passwd"), self.user)
            self.home = target.path(home)
            self.images = os.path.join(target.shared, "faults-images")
            os.makedirs(self.images, mode=0o755, exist_ok=True)
        else:
            pw = pwd.getpwnam(self.user)
            self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, pw.pw_dir
            self.images = os.path.join(self.home, "images")
        self.names = []   # domains defined through define(), for cleanup
        self._conn = None

    # --- the daemon -------------------------------------------------------------------------
    def up(self):
        faultd_sh("up")

    def start(self):
        """Start libvirtd if it does not run; return once it answers."""
        self._drop()
        faultd_sh("start")

    def kill(self):
        """SIGKILL libvirtd; return once it is gone. Guests keep running."""
        self._drop()
        faultd_sh("kill")

    def restart(self):
        """SIGTERM libvirtd (if it runs), start it again; return once it answers."""
        self._drop()
        faultd_sh("restart")

    def pid(self):
        """libvirtd's pid, None when it does not run (a zombie does not count)."""
        try:
            with open(os.path.join(self.home, ".cache", "libvirt", "libvirtd.pid"), encoding="ascii") as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
                stat = handle.read()
        except (OSError, ValueError):
            return None
        comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        return pid if comm == "libvirtd" and state != "Z" else None

    def answers(self):
        return subprocess.run(["virsh", "-q", "-c", self.uri, "version"], capture_output=True,
                              env=dict(os.environ, LIBVIRT_AUTOSTART="0"), check=False, timeout=30).returncode == 0

    def virsh(self, *args, check=True, timeout=120):
        """``virsh -c URI ARGS`` as root; stdout (text). check=False: the CompletedProcess."""
        proc = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True, text=True,
                              env=dict(os.environ, LIBVIRT_AUTOSTART="0"), check=False, timeout=timeout)
        if not check:
            return proc
        if proc.returncode != 0:
            raise FaultdError("virsh %s failed (rc %d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc.stdout

    # --- a connection that survives kills/restarts -------------------------------------------
    @property
    def conn(self):
        """A cached libvirt connection, reopened after kill()/restart() or when it died."""
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            self._drop()
        self._conn = libvirt.open(self.uri)
        return self._conn

    def _drop(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None

    def lookup(self, name):
        return self.conn.lookupByName(name)

    def live_xml(self, name):
        return self.lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)

    def inactive_xml(self, name):
        return self.lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)

    # --- domains ----------------------------------------------------------------------------
    def new_name(self, suffix):
        return "%s%s-%s" % (PREFIX, uuid.uuid4().hex[:8], suffix)

    def image_dir(self, name):
        """~vffault/images/NAME, created and owned by vffault (QEMU runs as that user)."""
        path = os.path.join(self.images, name)
        os.makedirs(path, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        return path

    def make_image(self, name, basename, size=1024 * 1024):
        path = os.path.join(self.image_dir(name), basename)
        with open(path, "wb") as handle:
            handle.truncate(size)
        os.chown(path, self.uid, self.gid)
        return path

    def define(self, xml):
        """defineXML as the fault daemon; returns the domain name (removed by cleanup())."""
        name = parse(xml).findtext("name")
        if not name.startswith(PREFIX):
            raise ValueError("fault-suite domains are named %s...: %s" % (PREFIX, name))
        self.conn.defineXML(xml)
        self.names.append(name)
        return name

    def domains(self):
        return sorted(d.name() for d in self.conn.listAllDomains(0) if d.name().startswith(PREFIX))

    def cleanup(self, names=None):
        """Destroy (in parallel) and undefine every vff- domain (or just ``names``), delete their
        image dirs. Starts the daemon first if a test left it down."""
        if not self.answers():
            self.start()
        names = [n for n in (self.domains() if names is None else names) if n.startswith(PREFIX)]

        def destroy(name):
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError:
                return
            try:
                dom = conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            finally:
                conn.close()
        threads = [threading.Thread(target=destroy, args=(n,)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for name in names:
            try:
                self.lookup(name).undefine()
            except libvirt.libvirtError:
                pass
            shutil.rmtree(os.path.join(self.images, name), ignore_errors=True)
            if name in self.names:
                self.names.remove(name)


# --- guests -------------------------------------------------------------------------------------

class FaultGuest:
    """A running busybox guest on the fault daemon; ``console`` is _detach_lib.Console."""

    def __init__(self, faultd, name, console, targets_used=0):
        self.faultd, self.name, self.console = faultd, name, console
        self._count = targets_used

    def next_target(self):
        """vdb, vdc, ...: never reused on this guest."""
        self._count += 1
        n, letters = self._count + 1, ""
        while n:
            n, rem = divmod(n - 1, 26)
            letters = chr(ord("a") + rem) + letters
        return "vd" + letters

    def hotplug(self, tag, alias=True, flags=LIVE_AND_CONFIG):
        """Hot-plug one virtio-blk disk (alias ua-TAG, serial TAG) and wait until the guest lists it
        with no slot busy. Returns (target, alias or None, serial)."""
        target = self.next_target()
        alias_name = "ua-%s" % tag if alias else None
        src = self.faultd.make_image(self.name, "%s.img" % target)
        self.faultd.lookup(self.name).attachDeviceFlags(disk_xml(src, target, "virtio", alias_name, tag), flags)
        self.console.wait_serials(present=[tag])
        return target, alias_name, tag


def boot_guest(faultd, suffix, machine="q35", disks=()):
    """Define and boot the busybox guest on the fault daemon (~6 s under TCG); wait for its ready line.

    machine "q35": ACPI PCI hotplug, an unplug takes ~0.1 s; "pc-q35-5.2": native PCIe (pciehp), an
    unplug takes ~6.2 s. ``disks``: [(target, alias or None, serial)] cold-plugged virtio-blk disks.
    Raises LabError when the guest does not come up.
    """
    kernel = build_guest()
    name = faultd.new_name(suffix)
    console = Console(os.path.join(faultd.image_dir(name), "console.log"))
    xmls = [disk_xml(faultd.make_image(name, "%s.img" % t), t, "virtio", a, s) for t, a, s in disks]
    xml = detach_domain_xml(name, faultd.domain_type, xmls, guest=kernel, console=console.path, memory_mib=128,
                            root_ports=16, scsi=False, machine=machine)
    faultd.define(xml)
    faultd.lookup(name).create()
    console.wait_ready()
    console.wait_serials(present=[s for _t, _a, s in disks])
    return FaultGuest(faultd, name, console, targets_used=len(disks))


# --- modules ------------------------------------------------------------------------------------

class ModuleProcess:
    """A module started as Ansible runs it (``python -m <module> args.json``) in the background,
    so a test can kill or restart the daemon while it runs. ``result()`` waits and returns a
    ModuleRun (or ``result_class``)."""

    def __init__(self, module, args, workdir, check=False, result_class=ModuleRun):
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, "args-%s.json" % uuid.uuid4().hex[:8])
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=False)}, handle)
        self.module, self.result_class, self.started = module, result_class, time.monotonic()
        # On a generation target: that host's Python inside its tree (workdir is shared).
        self.proc = subprocess.Popen(TARGET.python_argv(["-m", MODULES + module, path], cwd=workdir),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=TARGET.module_env(module_env()), cwd=workdir)
        self.seconds = None

    def running(self):
        return self.proc.poll() is None

    def result(self, timeout=600):
        stdout, stderr = self.proc.communicate(timeout=timeout)
        self.seconds = time.monotonic() - self.started
        try:
            result = json.loads(stdout)
        except ValueError:
            raise AssertionError("%s printed no JSON (rc %d)\nstdout:\n%s\nstderr:\n%s"
                                 % (self.module, self.proc.returncode, stdout, stderr))
        return self.result_class(self.proc.returncode, result, stdout, stderr)


__all__ = ["FaultDaemon", "FaultGuest", "FaultdError", "LabError", "ModuleProcess", "SessionLock", "boot_guest",
           "faultd_sh", "run_module", "Console", "disk_xml", "detach_domain_xml", "LIVE_AND_CONFIG"]
