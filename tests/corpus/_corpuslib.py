"""Pure helpers of the corpus test: no libvirt, no pytest.

- corpus discovery and the deterministic CI sample (:func:`select`);
- preparing a libvirt test-suite file for this host (:func:`prepare`);
- a structural XML diff that classifies differences as reorderings, attribute changes,
  added/removed elements and text changes (:func:`diff`, :class:`Delta`);
- the independent judge's own edits: the changes a module *reported* applied with plain lxml
  (:func:`apply_reported`) and undone again (:func:`undo_reported`);
- secret values of a definition and a search for them in module output (:func:`secrets_of`,
  :func:`leaks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass

from lxml import etree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "vfcorpus-"
EMULATOR = "/usr/bin/qemu-system-x86_64"
X86 = ("x86_64", "i686")
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# Files the sample always takes when the corpus has them: every secret class of check (d), and
# one example of every normalisation class found on libvirt 9.0 (docs/corpus.md), so that the CI
# sample exercises each of them. Unknown names (another libvirt version) are ignored.
SEED_FILES = (
    "disk-network-http.x86_64-latest.xml",        # <cookies>
    "graphics-spice-timeout.x86_64-latest.xml",   # graphics passwd
    "qemu-ns.x86_64-latest.xml",                  # qemu:env values
    "disk-network-iscsi.x86_64-latest.xml",       # <auth><secret usage=>
    "pcie-expander-bus.xml",                      # X1->X2: pcie-root-port re-sorted
    "pcie-root.xml",                              # X1->X2: implicit sata/usb controllers re-sorted
    "boot-floppy-q35.xml",                        # X1->X2: implicit fdc/usb controllers re-sorted
    "vcpu-placement-static.xml",                  # X1->X2: implicit usb controller re-sorted
    "autoindex.xml",                              # corpus->X1: USB companions re-sorted
    "console-compat2.xml",                        # corpus->X1: virtio console port renumbered
    "channel-virtio-auto.xml",                    # virtio-serial ports assigned
    "disk-backing-chains-index-active.xml",       # corpus->X1: backing chain @index dropped
)


# Names of environment variables whose value is a secret (the judge's own, deliberately simple rule).
SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|cookie|credential|auth", re.IGNORECASE)


class Skip(Exception):
    """This corpus file cannot be used on this host (reason in the message)."""


# --- corpus -------------------------------------------------------------------------------------

def corpus_files(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".xml"))


def family(filename):
    """Feature family of a test file: the first word of its name ('disk', 'usb', 'graphics', ...)."""
    return re.split(r"[-_.]", filename, maxsplit=1)[0]


def arch_of(xml_bytes):
    try:
        root = etree.fromstring(xml_bytes)
    except etree.XMLSyntaxError:
        return None
    t = root.find("os/type")
    return t.get("arch") if t is not None else None


def _stable(name):
    return hashlib.sha256(name.encode()).hexdigest()


def select(directory, sample):
    """The corpus files to run: all of them (``sample`` 'all'), or a deterministic diverse sample.

    The sample takes the seed files first, then round-robin over the feature families (sorted),
    inside a family in a fixed pseudo-random order (SHA-256 of the name); only x86 files, since the
    others are skipped anyway. The same corpus and N always give the same files.
    """
    files = corpus_files(directory)
    if str(sample).lower() in ("all", "0", ""):
        return files
    n = int(sample)
    x86 = []
    for f in files:
        with open(os.path.join(directory, f), "rb") as handle:
            if arch_of(handle.read()) in X86 + (None,):
                x86.append(f)
    chosen = [f for f in SEED_FILES if f in x86][:n]
    families = defaultdict(list)
    for f in sorted(x86, key=_stable):
        if f not in chosen:
            families[family(f)].append(f)
    order = sorted(families)
    while len(chosen) < n and any(families.values()):
        for fam in order:
            if families[fam] and len(chosen) < n:
                chosen.append(families[fam].pop(0))
    return sorted(chosen)


# --- preparing a file for this host -------------------------------------------------------------

def domain_name(run_id, filename, twin=""):
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", filename[:-4] if filename.endswith(".xml") else filename)
    return "%s%s%s-%s" % (PREFIX, run_id, ("-" + twin) if twin else "", stem[:60])


def set_identity(root, name, uuid):
    """Name, UUID and the SMBIOS system UUID (libvirt refuses a sysinfo UUID that differs)."""
    el = root.find("name")
    if el is None:
        el = etree.Element("name")
        root.insert(0, el)
    el.text = name
    el = root.find("uuid")
    if el is None:
        el = etree.Element("uuid")
        root.find("name").addnext(el)
    el.text = uuid
    for entry in root.iterfind("sysinfo/system/entry[@name='uuid']"):
        entry.text = uuid
    # <title> is free text; leave it. <genid> is regenerated only when empty: keep as is.


def prepare(xml_bytes, name, uuid):
    """The corpus definition made definable here: name, UUID, type qemu, this host's emulator."""
    try:
        root = etree.fromstring(xml_bytes)
    except etree.XMLSyntaxError as exc:
        raise Skip("not well-formed XML: %s" % exc)
    if root.tag != "domain":
        raise Skip("root element is <%s>, not <domain>" % root.tag)
    os_type = root.find("os/type")
    arch = os_type.get("arch") if os_type is not None else None
    if arch not in X86 + (None,):
        raise Skip("arch %s (this host runs qemu-system-x86_64 only)" % arch)
    root.set("type", "qemu")
    set_identity(root, name, uuid)
    devices = root.find("devices")
    if devices is None:
        devices = etree.SubElement(root, "devices")
    emulator = devices.find("emulator")
    if emulator is None:
        emulator = etree.Element("emulator")
        devices.insert(0, emulator)
    emulator.text = EMULATOR
    return etree.tostring(root, encoding="unicode")


def rename(xml_text, old_name, old_uuid, new_name, new_uuid):
    """``xml_text`` with every occurrence of a name/UUID (also in paths libvirt derived) replaced."""
    root = etree.fromstring(xml_text.encode())
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.text and (old_name in el.text or old_uuid in el.text):
            el.text = el.text.replace(old_name, new_name).replace(old_uuid, new_uuid)
        for key, value in el.attrib.items():
            if old_name in value or old_uuid in value:
                el.set(key, value.replace(old_name, new_name).replace(old_uuid, new_uuid))
    return etree.tostring(root, encoding="unicode")


# --- structural diff ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Delta:
    """One difference between two versions of a definition.

    ``kind``: reorder, attr-changed, attr-added, attr-removed, added, removed, text-changed.
    ``where``: the element's generic path (no positions; devices carry their type), the class key.
    ``detail``: what exactly (values, which children moved) for the example column.
    """

    kind: str
    where: str
    detail: str

    @property
    def klass(self):
        # nested backing chains: /backingStore/backingStore/... is one class
        return "%s %s" % (self.kind, re.sub(r"(/backingStore)(/backingStore)+", r"\1+", self.where))


def _local(tag):
    if not isinstance(tag, str):
        return None
    if tag.startswith("{"):
        ns, _sep, local = tag[1:].partition("}")
        return ("qemu:" if ns == QEMU_NS else "{%s}" % ns) + local
    return tag


def _step(el):
    tag = _local(el.tag)
    kind = el.get("type")
    return "%s[%s]" % (tag, kind) if kind and tag in (
        "controller", "disk", "interface", "channel", "console", "serial", "parallel", "graphics",
        "hostdev", "input", "redirdev", "smartcard", "memory", "filesystem", "sound", "video",
        "address", "model", "target", "rng", "tpm", "shmem", "hub", "source") else tag


def _children(el):
    return [c for c in el if isinstance(c.tag, str)]


def _c14n(el):
    """A canonical string of an element, whitespace-only text and comments ignored."""
    parts = [_local(el.tag), json.dumps(sorted(el.attrib.items()))]
    text = (el.text or "").strip()
    if text:
        parts.append(json.dumps(text))
    parts.extend(_c14n(c) for c in _children(el))
    return "(" + " ".join(parts) + ")"


def _loose(el):
    """How an element is recognised when it changed: tag, type, and for controllers the index."""
    key = [_local(el.tag), el.get("type") or ""]
    if key[0] == "controller":
        key += [el.get("index") or ""]
    if key[0] == "entry":
        key += [el.get("name") or ""]
    return tuple(key)


def _label(el):
    """A short human-readable name of one element for the detail column."""
    bits = [_step(el)]
    for key in ("index", "model", "name", "dev", "port", "bus"):
        if el.get(key) is not None:
            bits.append("%s=%s" % (key, el.get(key)))
    t = el.find("target")
    if t is not None:
        for key in ("dev", "type", "port", "name"):
            if t.get(key) is not None:
                bits.append("target.%s=%s" % (key, t.get(key)))
    return " ".join(bits)


def _lis(seq):
    """Indices (into seq) of one longest strictly increasing subsequence."""
    if not seq:
        return set()
    tails, prev, idx = [], [None] * len(seq), []
    import bisect
    for i, v in enumerate(seq):
        pos = bisect.bisect_left(tails, v)
        if pos == len(tails):
            tails.append(v)
            idx.append(i)
        else:
            tails[pos] = v
            idx[pos] = i
        prev[i] = idx[pos - 1] if pos else None
    out, k = set(), idx[-1]
    while k is not None:
        out.add(k)
        k = prev[k]
    return out


def diff(a_xml, b_xml):
    """[Delta] turning ``a_xml`` into ``b_xml`` (strings, bytes or elements)."""
    a = a_xml if isinstance(a_xml, etree._Element) else etree.fromstring(_b(a_xml))
    b = b_xml if isinstance(b_xml, etree._Element) else etree.fromstring(_b(b_xml))
    out = []
    _diff_el(a, b, "/" + _step(a), out)
    return out


def _b(text):
    return text.encode() if isinstance(text, str) else text


def _diff_el(a, b, where, out):
    for key in sorted(set(a.attrib) | set(b.attrib)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if va is None:
            out.append(Delta("attr-added", "%s/@%s" % (where, key), "%s: %s=%r" % (_label(b), key, vb)))
        elif vb is None:
            out.append(Delta("attr-removed", "%s/@%s" % (where, key), "%s: %s=%r" % (_label(a), key, va)))
        else:
            out.append(Delta("attr-changed", "%s/@%s" % (where, key), "%s: %s %r -> %r" % (_label(a), key, va, vb)))
    ta, tb = (a.text or "").strip(), (b.text or "").strip()
    if ta != tb:
        out.append(Delta("text-changed", where, "%r -> %r" % (ta, tb)))
    ca, cb = _children(a), _children(b)
    if [_c14n(c) for c in ca] == [_c14n(c) for c in cb]:
        return
    pairs = {}  # index in ca -> index in cb
    # 1. identical elements, in order of appearance
    free_b = defaultdict(list)
    for j, c in enumerate(cb):
        free_b[_c14n(c)].append(j)
    for i, c in enumerate(ca):
        lst = free_b.get(_c14n(c))
        if lst:
            pairs[i] = lst.pop(0)
    used_b = set(pairs.values())
    # 2. changed elements, recognised loosely, in order of appearance
    loose_b = defaultdict(list)
    for j, c in enumerate(cb):
        if j not in used_b:
            loose_b[_loose(c)].append(j)
    changed = []
    for i, c in enumerate(ca):
        if i in pairs:
            continue
        lst = loose_b.get(_loose(c))
        if lst:
            pairs[i] = lst.pop(0)
            changed.append(i)
    used_b = set(pairs.values())
    # 3. order of the paired elements
    ordered = sorted(pairs)
    keep = _lis([pairs[i] for i in ordered])
    moved = [ca[ordered[k]] for k in range(len(ordered)) if k not in keep]
    if moved:
        out.append(Delta("reorder", "%s/{%s}" % (where, ",".join(sorted({_step(m) for m in moved}))),
                         "moved: " + "; ".join(_label(m) for m in moved)))
    for i in changed:
        _diff_el(ca[i], cb[pairs[i]], "%s/%s" % (where, _step(ca[i])), out)
    for i, c in enumerate(ca):
        if i not in pairs:
            out.append(Delta("removed", "%s/%s" % (where, _step(c)), _label(c)))
    for j, c in enumerate(cb):
        if j not in used_b:
            out.append(Delta("added", "%s/%s" % (where, _step(c)), _label(c)))


# --- the judge's own edits ------------------------------------------------------------------------

ALIAS_RULES = ("alias-missing", "alias-invalid", "alias-duplicate", "alias-mismatch")
# which <driver> attributes each io-policy rule may change
IO_RULES = {"cache-policy": ("cache",), "io-policy": ("io",), "io-native-needs-direct-cache": ("io",),
            "io-native-not-applicable": ()}


class JudgeError(Exception):
    """A reported change the judge cannot apply (unknown rule, path not in the XML)."""


def _device(root, path):
    found = root.getroottree().xpath(path)
    if len(found) != 1:
        raise JudgeError("reported device path %s matches %d elements" % (path, len(found)))
    return found[0]


def apply_reported(xml_text, findings):
    """``xml_text`` with the changes of the ``fixed`` findings made by plain lxml edits."""
    root = etree.fromstring(_b(xml_text))
    for f in findings:
        if f.get("status") != "fixed":
            continue
        el = _device(root, f["device"]["path"])
        rule = f["rule"]
        if rule in ALIAS_RULES:
            for old in el.findall("alias"):
                el.remove(old)
            etree.SubElement(el, "alias").set("name", f["desired"]["alias"])
        elif rule in IO_RULES:
            driver = el.find("driver")
            if driver is None:
                driver = etree.SubElement(el, "driver")
            for attr in IO_RULES[rule]:
                if f["desired"].get(attr + "_set", True):
                    driver.set(attr, f["desired"][attr])
                else:
                    driver.attrib.pop(attr, None)
        else:
            raise JudgeError("the judge does not know rule %s (finding %s)" % (rule, f.get("message")))
    return etree.tostring(root, encoding="unicode")


def reported_present(xml_text, findings):
    """Problems: fixed findings whose change is not in ``xml_text`` (e.g. an alias libvirt dropped)."""
    root = etree.fromstring(_b(xml_text))
    problems = []
    for f in findings:
        if f.get("status") != "fixed":
            continue
        try:
            el = _device(root, f["device"]["path"])
        except JudgeError as exc:
            problems.append(str(exc))
            continue
        if f["rule"] in ALIAS_RULES:
            have = [a.get("name") for a in el.findall("alias")]
            if have != [f["desired"]["alias"]]:
                problems.append("%s reported %s fixed with alias %s, the definition has %s"
                                % (f["device"]["path"], f["rule"], f["desired"]["alias"], have or "none"))
        elif f["rule"] in IO_RULES:
            driver = el.find("driver")
            for attr in IO_RULES[f["rule"]]:
                want = f["desired"][attr] if f["desired"].get(attr + "_set", True) else None
                got = driver.get(attr) if driver is not None else None
                if got != want:
                    problems.append("%s reported %s fixed (%s=%s), the definition has %s=%s"
                                    % (f["device"]["path"], f["rule"], attr, want, attr, got))
    return problems


# --- secrets ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Secret:
    klass: str     # graphics-passwd, cookie, qemu-env, ...
    value: str
    where: str


def secrets_of(xml_text):
    """Secret values in a definition (what VIR_DOMAIN_XML_SECURE alone reveals)."""
    root = etree.fromstring(_b(xml_text))
    out = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = _local(el.tag)
        for key in ("passwd", "password"):
            if el.get(key):
                out.append(Secret("%s-%s" % (tag, key), el.get(key), "%s/@%s" % (_step(el), key)))
        if tag == "cookie" and (el.text or "").strip():
            out.append(Secret("cookie", el.text.strip(), "cookie[@name=%s]" % el.get("name")))
        if tag == "qemu:env" and el.get("value") and SECRET_NAME.search(el.get("name") or ""):
            out.append(Secret("qemu-env", el.get("value"), "qemu:env[@name=%s]" % el.get("name")))
        if tag == "qemu:arg" and re.search(r"(password|passwd|secret|key)=", el.get("value") or "", re.I):
            out.append(Secret("qemu-arg", el.get("value"), "qemu:arg"))
    return out


def secret_refs(xml_text):
    """Values that are shown and are not secrets (reported, not asserted): references to libvirt secret
    objects, user names, environment variables with ordinary names (qemu-ns: NS=ns)."""
    root = etree.fromstring(_b(xml_text))
    out = []
    for el in root.iter("secret"):
        for key in ("usage", "uuid"):
            if el.get(key):
                out.append(Secret("secret-%s" % key, el.get(key), "secret/@%s" % key))
    for el in root.iter("{%s}env" % QEMU_NS):
        if el.get("value") and not SECRET_NAME.search(el.get("name") or ""):
            out.append(Secret("qemu-env-plain", el.get("value"), "qemu:env[@name=%s]" % el.get("name")))
    for el in root.iter("auth"):
        if el.get("username"):
            out.append(Secret("auth-username", el.get("username"), "auth/@username"))
    return out


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def _xml_values(text):
    try:
        root = etree.fromstring(_b(text))
    except (etree.XMLSyntaxError, ValueError):
        return None
    values = []
    for el in root.iter():
        if isinstance(el.tag, str):
            values.extend(el.attrib.values())
            if el.text and el.text.strip():
                values.append(el.text.strip())
    return values


def found_in(value, result):
    """Where ``value`` shows in a module result: 'diff' or 'output' (or None).

    A string of the result that is XML (the --diff before/after) is searched by attribute value and
    element text; other strings by equality, or containment for values of 6 characters and more
    (short values like 'ns' occur in ordinary words).
    """
    for key, part in (("diff", result.get("diff")), ("output", {k: v for k, v in result.items() if k != "diff"})):
        for s in _strings(part):
            xml_values = _xml_values(s) if s.lstrip().startswith("<") else None
            candidates = xml_values if xml_values is not None else [s]
            for c in candidates:
                if c == value or (len(value) >= 6 and value in c):
                    return key
    return None
