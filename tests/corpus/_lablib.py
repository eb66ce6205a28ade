"""libvirt side of the corpus test: defining corpus files, cleaning up, the normalisation study.

Used by conftest.py and by ``normalisation.py`` (the study as a script). No pytest here.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid as uuidlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import libvirt

import _corpuslib as cl

SECURE_INACTIVE = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE
UNDEFINE_ALL = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0))
CORPUS_SCRIPT = os.path.join(cl.ROOT, "scripts", "corpus.sh")

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def corpus_dir():
    """Run scripts/corpus.sh (instant when the corpus is there); its directory."""
    # VIRTFLEET_TARGET is inherited: on a generation host corpus.sh takes that host's libvirt version.
    proc = subprocess.run(["bash", CORPUS_SCRIPT], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError("scripts/corpus.sh failed (rc %d):\n%s" % (proc.returncode, proc.stderr))
    return proc.stdout.strip().splitlines()[-1]


def refusal_class(message):
    """A libvirt error message with names, numbers and quoted values blanked: the refusal's class."""
    msg = re.sub(r"'[^']*'", "'…'", message)
    msg = re.sub(r"/\S+", "PATH", msg)
    return re.sub(r"\s+", " ", re.sub(r"\d+", "N", msg))[:160]


class Definer:
    """Defines prepared corpus domains and twins, remembers every name, undefines them all."""

    def __init__(self, conn, run_id=None):
        self.conn = conn
        self.uri = conn.getURI()
        self.run_id = run_id or uuidlib.uuid4().hex[:6]
        self.names = []
        self.reconnects = 0

    def _alive(self):
        try:
            return self.conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def _call(self, fn):
        """fn(conn); once more on a fresh connection when the daemon went away (another suite
        restarting libvirtd), so that a lost connection is never counted as libvirt refusing a file."""
        try:
            return fn(self.conn)
        except libvirt.libvirtError:
            if self._alive():
                raise
        for _attempt in range(50):
            try:
                self.conn = libvirt.open(self.uri)
                break
            except libvirt.libvirtError:
                time.sleep(0.2)
        self.reconnects += 1
        return fn(self.conn)

    def define(self, xml_text):
        """defineXMLFlags(VALIDATE); the domain's name. Raises libvirt.libvirtError on refusal."""
        dom = self._call(lambda c: c.defineXMLFlags(xml_text, libvirt.VIR_DOMAIN_DEFINE_VALIDATE))
        name = dom.name()
        if name not in self.names:
            self.names.append(name)
        return name

    def xml(self, name):
        return self._call(lambda c: c.lookupByName(name).XMLDesc(SECURE_INACTIVE))

    def undefine(self, name):
        try:
            dom = self._call(lambda c: c.lookupByName(name))
        except libvirt.libvirtError:
            return None
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(UNDEFINE_ALL)
        except libvirt.libvirtError as exc:
            return "%s: %s" % (name, exc)
        return None

    def cleanup(self):
        errors = [e for e in (self.undefine(n) for n in self.names) if e]
        self.names = []
        return errors


def prepare_file(directory, filename, definer, twin=""):
    """(name, uuid, prepared xml) of a corpus file; raises cl.Skip."""
    with open(os.path.join(directory, filename), "rb") as handle:
        data = handle.read()
    name = cl.domain_name(definer.run_id, filename, twin)
    uuid = str(uuidlib.uuid4())
    return name, uuid, cl.prepare(data, name, uuid)


# --- normalisation study ---------------------------------------------------------------------------

@dataclass
class StudyRecord:
    filename: str
    refused: str | None = None           # libvirt's message when the first define failed
    skipped: str | None = None           # not usable here (arch)
    zero: list = field(default_factory=list)     # [Delta] prepared corpus file -> X1 (first define)
    first: list = field(default_factory=list)    # [Delta] X1 -> X2
    second: list = field(default_factory=list)   # [Delta] X2 -> X3
    redefine_error: str | None = None    # libvirt refused its own output
    twin_differs: list = field(default_factory=list)  # X2 of a twin (define X1 as a new domain) vs X2


def study_file(directory, filename, definer):
    """define -> X1, define X1 -> X2, define X2 -> X3 on one domain; also X1 defined as a twin."""
    rec = StudyRecord(filename)
    try:
        name, uuid, xml = prepare_file(directory, filename, definer, twin="n")
    except cl.Skip as exc:
        rec.skipped = str(exc)
        return rec
    try:
        definer.define(xml)
    except libvirt.libvirtError as exc:
        rec.refused = exc.get_error_message()
        return rec
    try:
        x1 = definer.xml(name)
        try:
            definer.define(x1)
            x2 = definer.xml(name)
            definer.define(x2)
            x3 = definer.xml(name)
        except libvirt.libvirtError as exc:
            rec.redefine_error = exc.get_error_message()
            return rec
        rec.zero = cl.diff(xml, x1)
        rec.first = cl.diff(x1, x2)
        rec.second = cl.diff(x2, x3)
        # Is "define it as a new domain" (the judge's twin) the same as "redefine in place"?
        tname, tuuid = cl.domain_name(definer.run_id, filename, "nt"), str(uuidlib.uuid4())
        troot = cl.etree.fromstring(x1.encode())
        cl.set_identity(troot, tname, tuuid)
        try:
            definer.define(cl.etree.tostring(troot, encoding="unicode"))
            tx2 = cl.rename(definer.xml(tname), tname, tuuid, name, uuid)
            rec.twin_differs = cl.diff(x2, tx2)
        except libvirt.libvirtError as exc:
            rec.twin_differs = [cl.Delta("twin-refused", "/domain", exc.get_error_message())]
        finally:
            definer.undefine(tname)
    finally:
        definer.undefine(name)
    return rec


def run_study(conn, directory, files=None):
    definer = Definer(conn)
    records = []
    try:
        for filename in files or cl.corpus_files(directory):
            records.append(study_file(directory, filename, definer))
    finally:
        definer.cleanup()
    return records


def classify(records, attr):
    """{class: (files, example file, example detail)} over ``attr`` ('first' or 'second')."""
    files = defaultdict(set)
    example = {}
    for rec in records:
        for delta in getattr(rec, attr):
            files[delta.klass].add(rec.filename)
            example.setdefault(delta.klass, (rec.filename, delta.detail))
    return {k: (sorted(v), example[k][0], example[k][1]) for k, v in files.items()}


def report(records, directory, seconds=None):
    """The study as Markdown (what docs/corpus.md quotes)."""
    accepted = [r for r in records if not (r.refused or r.skipped)]
    refused = Counter(refusal_class(r.refused) for r in records if r.refused)
    lines = ["# libvirt normalisation study: %s" % directory, ""]
    lines.append("files %d, skipped (arch) %d, refused by libvirt %d, accepted %d%s" % (
        len(records), sum(1 for r in records if r.skipped), sum(refused.values()), len(accepted),
        ", %.1f s" % seconds if seconds is not None else ""))
    changed1 = [r for r in accepted if r.first]
    changed2 = [r for r in accepted if r.second]
    lines.append("X1 != X2 (first unchanged redefine changes the definition): %d files" % len(changed1))
    lines.append("X2 != X3 (not idempotent): %d files%s" % (
        len(changed2), (": " + ", ".join(r.filename for r in changed2)) if changed2 else ""))
    redef = [r for r in accepted if r.redefine_error]
    lines.append("libvirt refused its own output on redefine: %d files%s" % (
        len(redef), "".join("\n  - %s: %s" % (r.filename, r.redefine_error) for r in redef)))
    twin = [r for r in accepted if r.twin_differs]
    lines.append("twin (X1 defined as a new domain) differs from the in-place redefine: %d files%s" % (
        len(twin), "".join("\n  - %s: %s" % (r.filename, "; ".join(d.klass + " " + d.detail for d in r.twin_differs[:3]))
                           for r in twin)))
    for attr, title in (("first", "X1 -> X2 (redefine of libvirt's own output)"), ("second", "X2 -> X3"),
                        ("zero", "corpus file -> X1 (first define), without pure additions of defaults")):
        classes = classify(accepted, attr)
        if attr == "zero":
            added = {k for k in classes if k.startswith(("added ", "attr-added "))}
            lines += ["", "First define: %d files get elements or attributes added (defaults, addresses, "
                      "controllers), %d classes; not listed." % (
                          len({f for k in added for f in classes[k][0]}), len(added))]
            classes = {k: v for k, v in classes.items() if k not in added}
        lines += ["", "## %s: %d classes" % (title, len(classes)), "",
                  "| files | kind | element | example file | example |", "|---:|---|---|---|---|"]
        for klass, (files, ex_file, ex_detail) in sorted(classes.items(), key=lambda kv: (-len(kv[1][0]), kv[0])):
            kind, _sep, where = klass.partition(" ")
            lines.append("| %d | %s | `%s` | %s | %s |" % (len(files), kind, where, ex_file, ex_detail.replace("|", "/")))
    if refused:
        lines += ["", "## refused at define (%d)" % sum(refused.values()), ""]
        lines += ["- %d x %s" % (n, k) for k, n in refused.most_common()]
    return "\n".join(lines) + "\n"


def timed_study(conn, directory, files=None):
    start = time.monotonic()
    records = run_study(conn, directory, files)
    return records, time.monotonic() - start
