"""Runs ON a generation host (its own python3 and libvirt bindings, 3.9+), for test_matrix.py.

Reads one JSON request on stdin, prints one JSON answer. For each domain of the request, in order:
make the file paths its definition names exist (empty files, qcow2 images for qcow2 disks,
directories for filesystems; only paths that did not exist, removed again at the end), define it with
VIR_DOMAIN_DEFINE_VALIDATE (as the collection defines), start it (TCG; no OS needed: SeaBIOS runs),
destroy it, and either keep the definition (``keep``: its inactive XML with secrets is returned) or
undefine it. Nothing else on the host is touched. Request::

    {"domains": [{"name": "vf-mx-...", "xml": "<domain ...>"}], "keep": false}
    {"cleanup": "vf-mx-"}         # destroy + undefine every domain whose name starts so

Answer: {"results": [{"name", "defined", "started", "error", "code", "xml"}], "created": [...]}.
"""

import json
import os
import subprocess
import sys
import time

import libvirt
from lxml import etree

URI = "qemu:///system"
SKIP_PREFIXES = ("/dev/", "/proc/", "/sys/", "/run/", "/var/run/")


def _quiet(_ctx, _err):
    pass


def paths_of(root):
    """(path, kind) for every host path the definition needs: kind file, qcow2 or dir."""
    out = []
    for disk in root.iterfind("devices/disk"):
        src = disk.find("source")
        if disk.get("type", "file") == "file" and src is not None and src.get("file"):
            drv = disk.find("driver")
            fmt = drv.get("type") if drv is not None else None
            out.append((src.get("file"), "qcow2" if fmt == "qcow2" and disk.get("device") == "disk" else "file"))
    for fs in root.iterfind("devices/filesystem"):
        src = fs.find("source")
        if fs.get("type", "mount") == "mount" and src is not None and src.get("dir"):
            out.append((src.get("dir"), "dir"))
    for tag in ("os/loader", "os/nvram", "os/kernel", "os/initrd", "os/dtb"):
        for el in root.iterfind(tag):
            if el.text and el.text.strip().startswith("/"):
                out.append((el.text.strip(), "file"))
    for el in root.iter("source"):
        if el.getparent().tag in ("serial", "console", "parallel", "channel") and el.get("path") and \
                el.getparent().get("type") == "file":
            out.append((el.get("path"), "file"))
    return [(p, k) for p, k in out if p.startswith("/") and not p.startswith(SKIP_PREFIXES)]


def make_paths(xml, created):
    try:
        root = etree.fromstring(xml.encode("utf-8"))
    except etree.XMLSyntaxError:
        return
    for path, kind in paths_of(root):
        if os.path.lexists(path):
            continue
        parent = os.path.dirname(path)
        missing = []
        while parent and parent != "/" and not os.path.exists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        if kind == "dir":
            os.mkdir(path)
        elif kind == "qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"], check=True)
        else:
            open(path, "w").close()
        created.append(path)


def remove_paths(created):
    for path in reversed(created):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def undefine(dom):
    for flags in (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, 0):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError:
            continue


def destroy(dom):
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError:
        pass


def one(conn, item, keep, created):
    res = {"name": item["name"], "defined": False, "started": False, "error": None, "code": None, "xml": None}
    make_paths(item["xml"], created)
    try:
        dom = conn.defineXMLFlags(item["xml"], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    except libvirt.libvirtError as exc:
        res.update(error=str(exc), code=exc.get_error_code(), stage="define")
        return res
    res["defined"] = True
    try:
        dom.create()
        res["started"] = bool(dom.isActive())
        if not res["started"]:
            res.update(error="not running after start", stage="start")
    except libvirt.libvirtError as exc:
        res.update(error=str(exc), code=exc.get_error_code(), stage="start")
    finally:
        destroy(dom)
    try:
        if keep and res["started"]:
            res["xml"] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        else:
            undefine(dom)
    except libvirt.libvirtError as exc:   # the connection went away: run_all tries the item again
        res.update(started=False, error=str(exc), code=exc.get_error_code(), stage="after start")
    return res


def alive(conn):
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def connect():
    for _attempt in range(30):   # the shared hosts' libvirtd is restarted now and then by other suites
        try:
            return libvirt.open(URI)
        except libvirt.libvirtError:
            time.sleep(1)
    sys.exit("cannot connect to %s for 30 s" % URI)


def run_all(items, keep, created):
    """Each item once; an item whose define or start met a lost connection (another suite restarted
    the daemon) is not a result: it is cleaned up and tried again on a new connection (twice at most)."""
    conn, results = connect(), []
    for item in items:
        for _attempt in range(3):
            res = one(conn, item, keep, created)
            if alive(conn):
                break
            conn = connect()
            cleanup(conn, item["name"], exact=True)
            res["retried_after_lost_connection"] = True
        results.append(res)
    return conn, results


def cleanup(conn, prefix, exact=False):
    gone = []
    for dom in conn.listAllDomains():
        if dom.name() == prefix if exact else dom.name().startswith(prefix):
            destroy(dom)
            undefine(dom)
            gone.append(dom.name())
    return gone


def main():
    req = json.load(sys.stdin)
    libvirt.registerErrorHandler(_quiet, None)
    if "cleanup" in req:
        print(json.dumps({"removed": cleanup(connect(), req["cleanup"])}))
        return
    created = []
    try:
        _conn, results = run_all(req["domains"], req.get("keep", False), created)
    finally:
        remove_paths(created)
    print(json.dumps({"results": results, "created": created}))


if __name__ == "__main__":
    main()
