"""Where does io= reach QEMU? The facts the io-not-applicable rule rests on, measured on the lab daemon.

For each disk kind (file, block = a loop device, nbd over a unix socket and over TCP served by a
qemu-nbd this module starts, dir = vvfat) and each io mode (threads, native with cache=none,
io_uring with cache=none) one transient single-disk domain is started, and we read:

- the storage node's ``-blockdev`` JSON from the QEMU process's own command line: libvirt sets
  ``aio`` on file/host_device nodes only;
- the process itself: Linux AIO leaves an ``[aio]`` mapping in /proc/PID/maps, io_uring an
  ``anon_inode:[io_uring]`` file descriptor; a disk whose io setting has no effect leaves neither;
- QMP ``query-named-block-nodes``: the node's driver and that cache.direct does reach the nbd node;
- QMP ``blockdev-add`` with ``aio``: QEMU's nbd and vvfat drivers have no such parameter at all;
- libvirt's define-time check: io=native with a cached mode is refused on nbd and dir disks too.

Finally ``_diskio.io_not_applicable`` must agree with every measurement. Domains are transient
and named ``vfio-<hex>-...``; qemu-nbd and the loop device are removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import libvirt
import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio

from _itlib import TARGET, native_io_refused

KINDS = ("file", "block", "nbd-unix", "nbd-tcp", "dir")
MODES = (("threads", "writeback"), ("native", "none"), ("io_uring", "none"))
AIO_DRIVERS = {"file", "host_device", "host_cdrom"}   # QEMU 7.2 blockdev drivers with an aio member
NBD_PORT = 10000 + os.getpid() % 20000
PREFIX = "vfio-%s" % uuid.uuid4().hex[:6]


def _wait_for(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what, pytrace=False)


class Backends:
    """Images, a loop device and two qemu-nbd servers (unix socket and 127.0.0.1 TCP)."""

    def __init__(self, root):
        self.root = root
        self.procs = []
        self.loop = None
        for name in ("file", "block", "nbd-unix", "nbd-tcp"):
            with open(self.path(name), "wb") as handle:
                # Data where SeaBIOS reads the boot sector: QEMU 10.0 answers a read of a hole in a
                # sparse raw file without submitting any I/O, so Linux AIO / io_uring would never be set up.
                handle.write(b"\xa5" * 65536)
                handle.truncate(16 * 1024 * 1024)
        os.makedirs(os.path.join(root, "dir"), exist_ok=True)
        self.socket = os.path.join(root, "nbd.sock")

    def path(self, name):
        return os.path.join(self.root, name + ".img")

    def start(self):
        if shutil.which("qemu-nbd") is None:
            pytest.fail("qemu-nbd is missing (Debian package qemu-utils)", pytrace=False)
        common = ["qemu-nbd", "-f", "raw", "--persistent", "--shared=4"]
        self.procs.append(subprocess.Popen(common + ["-k", self.socket, self.path("nbd-unix")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        self.procs.append(subprocess.Popen(common + ["-b", "127.0.0.1", "-p", str(NBD_PORT), self.path("nbd-tcp")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        _wait_for(lambda: os.path.exists(self.socket), "qemu-nbd's unix socket")
        _wait_for(lambda: ":%d " % NBD_PORT in subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False).stdout
                  if shutil.which("ss") else True, "qemu-nbd on 127.0.0.1:%d" % NBD_PORT)
        for proc in self.procs:
            if proc.poll() is not None:
                pytest.fail("qemu-nbd exited: %s" % proc.stderr.read().decode(errors="replace"), pytrace=False)
        if shutil.which("losetup"):
            proc = subprocess.run(["losetup", "-f", "--show", self.path("block")], capture_output=True, text=True,
                                  check=False)
            if proc.returncode == 0:
                self.loop = proc.stdout.strip()

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True, check=False)

    def source(self, kind):
        return {
            "file": ("file", "<source file='%s'/>" % self.path("file")),
            "block": ("block", "<source dev='%s'/>" % self.loop),
            "nbd-unix": ("network", "<source protocol='nbd'><host transport='unix' socket='%s'/></source>" % self.socket),
            "nbd-tcp": ("network", "<source protocol='nbd'><host name='127.0.0.1' port='%d'/></source>" % NBD_PORT),
            "dir": ("dir", "<source dir='%s'/>" % os.path.join(self.root, "dir")),
        }[kind]


def disk_xml(backends, kind, io, cache):
    disk_type, source = backends.source(kind)
    fmt = "fat" if kind == "dir" else "raw"
    readonly = "<readonly/>" if kind == "dir" else ""
    return ("<disk type='%s' device='disk'><driver name='qemu' type='%s' cache='%s' io='%s'/>%s"
            "<target dev='vda' bus='virtio'/>%s</disk>" % (disk_type, fmt, cache, io, source, readonly))


def domain_xml(name, domain_type, disks):
    return ("<domain type='%s'><name>%s</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>%s</devices></domain>"
            % (domain_type, name, "".join(disks)))


def qmp(dom, command, **arguments):
    import libvirt_qemu

    msg = {"execute": command}
    if arguments:
        msg["arguments"] = arguments
    return json.loads(libvirt_qemu.qemuMonitorCommand(dom, json.dumps(msg), 0))


def wait_first_read(dom, timeout=20.0):
    """Seconds until the domain's disk served its first read (QMP query-blockstats); fails after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        stats = qmp(dom, "query-blockstats")["return"]
        if sum(s.get("stats", {}).get("rd_operations", 0) for s in stats) > 0:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail("the disk of %s served no read within %.0f s (SeaBIOS reads the boot sector)" % (dom.name(), timeout),
                pytrace=False)


def storage_blockdev(pid):
    """The -blockdev JSON objects of the storage (protocol) nodes on the process's command line."""
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        args = handle.read().decode().split("\0")
    nodes = [json.loads(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "-blockdev"]
    return [n for n in nodes if n.get("node-name", "").endswith("-storage")]


def aio_evidence(pid):
    with open("/proc/%d/maps" % pid, encoding="utf-8") as handle:
        linux_aio = sum(1 for line in handle if "[aio]" in line)
    fd_dir = "/proc/%d/fd" % pid
    io_uring = 0
    for fd in os.listdir(fd_dir):
        try:
            io_uring += os.readlink(os.path.join(fd_dir, fd)) == "anon_inode:[io_uring]"
        except OSError:
            pass
    return {"linux_aio_contexts": linux_aio, "io_uring_rings": io_uring}


def qemu_pid(name):
    with open(TARGET.path("/run/libvirt/qemu/%s.pid" % name), encoding="utf-8") as handle:
        return int(handle.read().strip())


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    the = Backends(str(tmp_path_factory.mktemp("vfio")))
    the.start()
    yield the
    the.stop()


@pytest.fixture(scope="module")
def measured(lab, backends):
    """{(kind, io): facts} from one transient single-disk domain per kind and io mode."""
    out = {}
    for kind in KINDS:
        if kind == "block" and backends.loop is None:
            continue
        for io, cache in MODES:
            name = "%s-%s-%s" % (PREFIX, kind, io.replace("_", ""))
            xml = disk_xml(backends, kind, io, cache)
            dom = lab.conn.createXML(domain_xml(name, lab.domain_type, [xml]), 0)
            try:
                pid = qemu_pid(name)
                # The evidence is read after the disk's first request (SeaBIOS reads the boot sector):
                # QEMU 10.0 sets Linux AIO / io_uring up at the first submitted request, not at open
                # as 5.2 and 7.2 do (docs/generations.md), so right after the start it is not there yet.
                first_read = wait_first_read(dom)
                nodes = qmp(dom, "query-named-block-nodes", flat=True)["return"]
                storage = [n for n in nodes if n["node-name"].endswith("-storage")]
                out[(kind, io)] = {
                    "disk": etree.fromstring(xml),
                    "blockdev": storage_blockdev(pid),
                    "qmp_storage": storage,
                    "process": aio_evidence(pid),
                    "first_read": first_read,
                }
            finally:
                dom.destroy()
    return out


def _one(items):
    assert len(items) == 1, items
    return items[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("io", [m[0] for m in MODES])
def test_aio_reaches_the_protocol_node_only_for_file_and_block(measured, kind, io):
    if (kind, io) not in measured:
        pytest.skip("no loop device on this machine (losetup failed)")
    facts = measured[(kind, io)]
    node = _one(facts["blockdev"])
    if kind in ("file", "block"):
        assert node["driver"] == ("file" if kind == "file" else "host_device")
        assert node["aio"] == io
    else:
        assert node["driver"] == ("vvfat" if kind == "dir" else "nbd")
        assert "aio" not in node, node
    # QMP names the same driver for the node
    assert _one(facts["qmp_storage"])["drv"] == node["driver"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_process_uses_linux_aio_or_io_uring_only_where_aio_is_set(measured, kind):
    if (kind, "native") not in measured:
        pytest.skip("no loop device on this machine (losetup failed)")
    has_aio = kind in ("file", "block")
    threads = measured[(kind, "threads")]["process"]
    native = measured[(kind, "native")]["process"]
    uring = measured[(kind, "io_uring")]["process"]
    assert threads == {"linux_aio_contexts": 0, "io_uring_rings": 0}
    assert (native["linux_aio_contexts"] > 0) == has_aio, native
    assert (uring["io_uring_rings"] > 0) == has_aio, uring
    assert native["io_uring_rings"] == 0 and uring["linux_aio_contexts"] == 0


@pytest.mark.parametrize("kind", ["file", "nbd-unix", "nbd-tcp", "dir"])
def test_cache_none_reaches_every_protocol_node(measured, kind):
    for io, cache in MODES:
        node = _one(measured[(kind, io)]["qmp_storage"])
        assert node["cache"]["direct"] is (cache == "none"), (io, node["cache"])
        assert _one(measured[(kind, io)]["blockdev"]).get("cache", {}).get("direct", False) is (cache == "none")


def test_qemu_has_no_aio_parameter_for_nbd_and_vvfat(lab, backends):
    name = "%s-probe" % PREFIX
    dom = lab.conn.createXML(domain_xml(name, lab.domain_type, []), 0)
    try:
        answers = {}
        for node, args in {
            "nbd": {"driver": "nbd", "server": {"type": "unix", "path": backends.socket}},
            "vvfat": {"driver": "vvfat", "dir": os.path.join(backends.root, "dir")},
            "file": {"driver": "file", "filename": backends.path("file"), "cache": {"direct": True}},
        }.items():
            answers[node] = qmp(dom, "blockdev-add", **{"node-name": "vfio-" + node, "aio": "native", **args})
        assert answers["nbd"]["error"]["desc"] == "Parameter 'aio' is unexpected"
        assert answers["vvfat"]["error"]["desc"] == "Parameter 'aio' is unexpected"
        assert answers["file"].get("return") == {}, answers["file"]
        # the schema: exactly the file-posix drivers carry aio
        schema = qmp(dom, "query-qmp-schema")["return"]
        by_name = {e["name"]: e for e in schema}
        options = by_name[by_name["blockdev-add"]["arg-type"]]
        with_aio = {v["case"] for v in options["variants"]
                    if "aio" in {m["name"] for m in by_name[v["type"]].get("members", [])}}
        assert with_aio == AIO_DRIVERS
        assert {"nbd", "rbd", "gluster", "iscsi", "http", "https", "ssh", "nfs", "nvme", "vvfat"} <= \
            {v["case"] for v in options["variants"]} - with_aio
    finally:
        dom.destroy()


@pytest.mark.parametrize("kind", ["nbd-unix", "dir"])
def test_libvirt_refuses_native_with_writeback_on_disks_where_qemu_ignores_io(lab, backends, kind):
    name = "%s-refused-%s" % (PREFIX, kind)
    xml = domain_xml(name, lab.domain_type, [disk_xml(backends, kind, "native", "writeback")])
    with pytest.raises(libvirt.libvirtError) as err:
        lab.conn.createXML(xml, 0)
    assert err.value.get_error_code() == libvirt.VIR_ERR_CONFIG_UNSUPPORTED
    assert native_io_refused(err.value), str(err.value)
    assert name not in [d.name() for d in lab.conn.listAllDomains()]


def test_the_rule_agrees_with_every_measurement(measured):
    assert measured, "nothing was measured"
    for (kind, io), facts in measured.items():
        reaches = "aio" in _one(facts["blockdev"])
        assert (_diskio.io_not_applicable(facts["disk"]) is None) == reaches, (kind, io)
