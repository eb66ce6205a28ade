"""Integration fixtures: a REAL libvirtd (qemu:///system) with QEMU guests, started by scripts/lab.sh.

- ``lab`` (session, autouse) runs ``scripts/lab.sh`` and fails every test when the daemon
  cannot be started: the integration suite never skips silently.
- ``domains`` (per test module) defines q35 domains with raw image files and removes them
  (destroy in parallel, undefine, delete files) at the end of the module, also on failure.
- ``run`` runs the module the way Ansible runs it on the target (``run_module``: ``python -m
  <module> args.json`` with ``_ansible_check_mode``/``_ansible_diff``) and returns a
  ``ModuleRun``: rc, the parsed result, stdout and stderr.
- Do not run this suite with pytest-xdist: tests restart libvirtd (legacy fixtures), which
  drops every other worker's connections.

Domain names are ``vf-it-<8 hex>[-suffix]``; tests always name their domains (``domains:``):
the host may carry domains that are not ours.

Targets (tests/_target.py): ``VIRTFLEET_TARGET=bullseye|bookworm|trixie`` runs the same suite
against that host of the mixed-generation fleet: the test's connection (``lab.conn``) goes to its
daemon's socket, the modules run inside its tree with its Python (``lab.uri`` is then the URI the
modules use there), images and ``tmp_path`` live in its shared directory, legacy files go into
its ``/etc/libvirt/qemu`` and ``lab.restart()`` restarts its libvirtd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid

import libvirt
import pytest
from lxml import etree

from _itlib import ROOT, TARGET, Disk, domain_xml, drivers, image_dir, parse, run_module, set_driver
from _target import TargetError, configure_basetemp

LAB_SCRIPT = os.path.join(ROOT, "scripts", "lab.sh")
LAB_ENV = "/run/virtfleet-lab.env"
QEMU_CONFIG_DIR = TARGET.path("/etc/libvirt/qemu")   # the daemon's own, seen from here
SECURE_INACTIVE = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE

# libvirt's default error handler prints every error on stderr; the tests look at exceptions.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs a real libvirtd/QEMU (started by scripts/lab.sh)")
    configure_basetemp(config, "integration")


def pytest_report_header(config):
    return "virtfleet target: %s" % TARGET


# --- the lab ----------------------------------------------------------------------------------

def _lab_sh(*args):
    if not os.path.exists(LAB_SCRIPT):
        pytest.fail("%s is missing: the integration tests start libvirtd through it" % LAB_SCRIPT, pytrace=False)
    proc = subprocess.run(["bash", LAB_SCRIPT, *args], capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail("scripts/lab.sh %s failed (rc %d): the integration tests need a running libvirtd.\n"
                    "stdout:\n%s\nstderr:\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr),
                    pytrace=False)
    return proc


def _read_env(path):
    env = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                env[key] = value
    return env


class Lab:
    """The running daemon: URIs, domain type, a connection that survives daemon restarts.

    ``uri`` is what the modules are given (they run on the target host), ``conn_uri`` what the
    test's own connection uses; on the lab both are qemu:///system."""

    def __init__(self, uri, domain_type, conn_uri=None, target=TARGET):
        self.uri = uri
        self.conn_uri = conn_uri or uri
        self.domain_type = domain_type
        self.target = target
        self._conn = None
        self.owned = set()  # names of every domain the suite defined that still exists

    @property
    def conn(self):
        if self._conn is None:
            self._conn = libvirt.open(self.conn_uri)
        return self._conn

    def drop_connection(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
        self._conn = None

    def restart(self):
        """Restart libvirtd (it reads /etc/libvirt/qemu/*.xml only at start)."""
        self.drop_connection()
        if self.target.is_gen:
            try:
                self.target.restart_libvirtd()
            except TargetError as exc:
                pytest.fail(str(exc), pytrace=False)
        else:
            _lab_sh("restart")

    def dom(self, name):
        return self.conn.lookupByName(name)

    def inactive_xml(self, name):
        return self.dom(name).XMLDesc(SECURE_INACTIVE)

    def live_xml(self, name):
        return self.dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)

    def snapshot(self):
        """{name: secure inactive XML} of every domain of the suite: 'nothing changed' checks."""
        return {name: self.inactive_xml(name) for name in sorted(self.owned)}


@pytest.fixture(scope="session", autouse=True)
def lab():
    """Start (or find) the lab daemon with scripts/lab.sh. Fails, never skips, when it cannot.
    On a generation target: that host (generations.sh must have brought it up), prepared."""
    if TARGET.is_gen:
        try:
            TARGET.prepare()
        except TargetError as exc:
            pytest.fail(str(exc), pytrace=False)
        the_lab = Lab(TARGET.module_uri, TARGET.domain_type, conn_uri=TARGET.system_uri)
        try:
            the_lab.conn.getLibVersion()
        except libvirt.libvirtError as exc:
            pytest.fail("libvirtd of %s does not answer at %s: %s" % (TARGET, the_lab.conn_uri, exc), pytrace=False)
        yield the_lab
        the_lab.drop_connection()
        return
    _lab_sh()
    if not os.path.exists(LAB_ENV):
        pytest.fail("scripts/lab.sh did not write %s" % LAB_ENV, pytrace=False)
    env = _read_env(LAB_ENV)
    missing = [k for k in ("LIBVIRT_URI", "LIBVIRT_DOMAIN_TYPE") if not env.get(k)]
    if missing:
        pytest.fail("%s lacks %s" % (LAB_ENV, ", ".join(missing)), pytrace=False)
    the_lab = Lab(env["LIBVIRT_URI"], env["LIBVIRT_DOMAIN_TYPE"])
    try:
        the_lab.conn.getLibVersion()
    except libvirt.libvirtError as exc:
        pytest.fail("libvirtd at %s does not answer after scripts/lab.sh: %s" % (the_lab.uri, exc), pytrace=False)
    yield the_lab
    the_lab.drop_connection()


# --- domains ----------------------------------------------------------------------------------

class Domains:
    """Defines test domains and removes them again (see ``cleanup``)."""

    def __init__(self, lab):
        self.lab = lab
        self.names = []

    def _new_name(self, suffix):
        name = "vf-it-%s" % uuid.uuid4().hex[:8]
        return "%s-%s" % (name, suffix) if suffix else name

    def _images(self, name, disks):
        path = image_dir(name)
        os.makedirs(path, exist_ok=True)
        for disk in disks:
            with open(os.path.join(path, disk.target + ".img"), "wb") as handle:
                handle.truncate(1024 * 1024)  # raw, 1 MiB

    def define(self, disks, suffix="", start=False, **xml_options):
        """Define (and optionally start) a domain through the API; returns its name."""
        name = self._new_name(suffix)
        self.names.append(name)
        self._images(name, disks)
        dom = self.lab.conn.defineXML(domain_xml(name, self.lab.domain_type, disks, **xml_options))
        self.lab.owned.add(name)
        if start:
            dom.create()
        return name

    def create_transient(self, disks, suffix="", **xml_options):
        """Start a transient domain (no persistent definition); returns its name."""
        name = self._new_name(suffix)
        self.names.append(name)
        self._images(name, disks)
        self.lab.conn.createXML(domain_xml(name, self.lab.domain_type, disks, **xml_options), 0)
        return name

    def define_legacy(self, disks, suffix="", vnc_passwd=None, **xml_options):
        """A domain whose definition libvirt's API refuses (io=native on a cached disk, a VNC
        password longer than 8 characters): such definitions come from older libvirt.

        It is defined with valid placeholders so that libvirt fills in addresses, MACs and machine
        type, then the wanted values are written into its file in /etc/libvirt/qemu and libvirtd
        is restarted to load it, as after a libvirt upgrade.
        """
        placeholder = [Disk(d.target, d.bus, "none", "native", d.device) if d.io == "native" else d for d in disks]
        name = self.define(placeholder, suffix=suffix, vnc_passwd="x" * 8 if vnc_passwd else None, **xml_options)
        xml = self.lab.inactive_xml(name)
        for disk in disks:
            xml = set_driver(xml, disk.target, disk.cache, disk.io)
        if vnc_passwd:
            root = parse(xml)
            root.find("devices/graphics").set("passwd", vnc_passwd)
            xml = etree.tostring(root, encoding="unicode")
        path = os.path.join(QEMU_CONFIG_DIR, name + ".xml")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(xml)
        os.replace(path + ".tmp", path)
        self.lab.restart()
        loaded = self.lab.inactive_xml(name)
        assert drivers(loaded) == {d.target: (d.cache, d.io) for d in disks}, \
            "libvirtd did not load the legacy definition of %s as written" % name
        if vnc_passwd:
            assert parse(loaded).find("devices/graphics").get("passwd") == vnc_passwd
        return name

    def cleanup(self):
        """Destroy (in parallel: a QEMU process takes ~1.6 s to die here), undefine, delete files."""
        if not self.names:
            return
        self.lab.drop_connection()  # a fresh connection even if a test broke the old one
        conn = self.lab.conn
        errors = []

        def remove(name):
            try:
                try:
                    dom = conn.lookupByName(name)
                except libvirt.libvirtError:
                    dom = None
                if dom is not None:
                    persistent = dom.isPersistent()  # a transient domain is gone after destroy
                    if dom.isActive():
                        dom.destroy()
                    if persistent:
                        dom.undefine()
            except libvirt.libvirtError as exc:
                errors.append("%s: %s" % (name, exc))
            finally:
                self.lab.owned.discard(name)
                shutil.rmtree(image_dir(name), ignore_errors=True)
                leftover = os.path.join(QEMU_CONFIG_DIR, name + ".xml")
                if os.path.exists(leftover) and dom is None:
                    os.unlink(leftover)

        threads = [threading.Thread(target=remove, args=(name,)) for name in self.names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.names = []
        assert not errors, "cleanup of test domains failed: %s" % "; ".join(errors)


@pytest.fixture(scope="module")
def domains(lab):
    made = Domains(lab)
    try:
        yield made
    finally:
        made.cleanup()


# --- running the module -------------------------------------------------------------------------

@pytest.fixture
def run(lab, tmp_path):
    """``run(check=False, diff=False, **module_args)``; uri defaults to the lab's."""
    def _run(check=False, diff=False, **args):
        args.setdefault("uri", lab.uri)
        return run_module(args, str(tmp_path / "work"), check=check, diff=diff)
    return _run


@pytest.fixture
def backup_dir(tmp_path):
    """Where the module may write backups; does not exist before the run."""
    return str(tmp_path / "backups")
