# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt domain XML: safe parsing, device identity, minimal edits, semantic comparison (private).

Pure logic: imports neither ``libvirt`` nor ``AnsibleModule``.

libvirt's own XML is canonical. Nothing here rebuilds a domain from a model: edits touch
exactly the attributes they are asked to, on the parsed document, so unknown elements,
foreign namespaces (``qemu:commandline``, ``<metadata>``), comments, PCI addresses and
device order come out as they went in. The text is re-serialised by lxml (double quotes, no
trailing newline), which libvirt reformats on define anyway; diffs compare lxml's
serialisation on both sides, so only the edited lines show.
"""

from __future__ import annotations

try:
    from lxml import etree

    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import XMLError

# Device elements under /domain/devices that can be hot-plugged or detached and can carry a
# user alias (libvirt formatdomain.html "Devices"; <emulator> is a setting, not a device).
ATTACHABLE_KINDS = (
    "disk", "interface", "hostdev", "controller", "filesystem", "redirdev", "smartcard",
    "rng", "watchdog", "input", "sound", "video", "memballoon", "serial", "parallel",
    "console", "channel", "tpm", "shmem", "memory", "vsock", "hub", "panic", "iommu",
)


def _parser():
    # No entity resolution, no DTD, no network: domain XML comes from libvirt, but backups and
    # fixtures come from disk, and XXE must not be a way in. Comments and blank text are kept
    # so that what we do not edit comes out exactly as it went in.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        # libvirt accepts metadata nested deeper than libxml2's default limit of 256 levels;
        # entities are never resolved, so lifting the depth/size limits opens no expansion attack.
        huge_tree=True,
        strip_cdata=False,  # CDATA in <metadata> stays CDATA
        remove_blank_text=False,
        remove_comments=False,
    )


def parse(xml_text, root_tag="domain"):
    """Parse libvirt XML text and return the root element (raises XMLError).

    ``root_tag`` is the document expected: ``domain`` (default), ``capabilities``, ``domainCapabilities``.
    """
    if not HAS_LXML:
        raise XMLError("Python lxml is required: install python3-lxml (or 'pip install lxml').")
    if isinstance(xml_text, str):
        xml_text = xml_text.encode("utf-8")
    what = "Domain XML" if root_tag == "domain" else "The <%s> XML" % root_tag
    try:
        root = etree.fromstring(xml_text, _parser())
    except etree.XMLSyntaxError as exc:
        raise XMLError("%s is not well-formed: %s" % (what, exc))
    if root.tag != root_tag:
        raise XMLError("Expected a <%s> document, got <%s>." % (root_tag, root.tag))
    return root


def to_string(root):
    return etree.tostring(root, encoding="unicode")


def element_string(el):
    """One element (e.g. a device) as a standalone XML string, without its tail."""
    copy = etree.fromstring(etree.tostring(el))
    copy.tail = None
    return to_string(copy)


def devices(root, kinds=ATTACHABLE_KINDS):
    """Device elements under /domain/devices in document order, with their path.

    ``kinds``: the element tags wanted (default the attachable ones, which can carry an alias);
    None for every element child of <devices> (graphics, video, emulator...).
    The path is what lxml's ``getpath`` gives (``/domain/devices/disk[2]``, no index for a tag that
    occurs once), computed from sibling counts instead of one tree walk per device.
    """
    devs = root.find("devices")
    if devs is None:
        return []
    if root.tag != "domain" or sum(1 for c in root if c.tag == "devices") > 1:
        tree = root.getroottree()
        return [(tree.getpath(el), el) for el in devs
                if isinstance(el.tag, str) and (kinds is None or el.tag in kinds)]
    kids = [(el.tag, el) for el in devs]
    counts = {}
    for tag, _el in kids:
        counts[tag] = counts.get(tag, 0) + 1
    seen, out = {}, []
    for tag, el in kids:
        if not isinstance(tag, str) or kinds is not None and tag not in kinds:
            continue
        if counts[tag] > 1:
            seen[tag] = seen.get(tag, 0) + 1
            out.append(("/domain/devices/%s[%d]" % (tag, seen[tag]), el))
        else:
            out.append(("/domain/devices/" + tag, el))
    return out


def first_children(el):
    """{tag: first child element with that tag} of ``el`` (what ``el.find(tag)`` returns, for every tag)."""
    kids = {}
    for child in el:
        tag = child.tag
        if tag not in kids and isinstance(tag, str):
            kids[tag] = child
    return kids


def attr(el, path, name):
    """Attribute ``name`` of ``el``'s descendant ``path`` ('' = el itself), or None."""
    node = el if not path else el.find(path)
    return None if node is None else node.get(name)


def text(el, path):
    return _node_text(el.find(path))


def _node_text(node):
    """A node's stripped text, None when it has none (or there is no node)."""
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def _source(el, src=None):
    src = el.find("source") if src is None else src
    if src is None:
        return None
    for key in ("file", "dev", "dir", "volume", "network", "bridge", "path", "socket"):
        value = src.get(key)
        if value:
            pool = src.get("pool")
            return "%s/%s" % (pool, value) if key == "volume" and pool else value
    if src.get("protocol"):
        return "%s:%s" % (src.get("protocol"), src.get("name") or "")
    if src.get("name"):
        return src.get("name")
    vendor, product = attr(src, "vendor", "id"), attr(src, "product", "id")
    if vendor and product:  # USB hostdev/redirdev by vendor:product
        return "usb:%s:%s" % (vendor, product)
    addr = src.find("address")
    if addr is not None and addr.get("uuid"):  # mediated device
        return "mdev:%s" % addr.get("uuid")
    if addr is not None and addr.get("bus") is not None:
        adapter = attr(src, "adapter", "name")
        formatted = _format_address(addr)
        return "%s:%s" % (adapter, formatted) if adapter else formatted
    return None


def _format_address(addr):
    kind = addr.get("type")
    if kind == "pci" or (kind is None and addr.get("slot") is not None):
        parts = [addr.get(k) or "0" for k in ("domain", "bus", "slot", "function")]
        try:
            dom, bus, slot, fn = (int(p, 0) for p in parts)
        except ValueError:
            return ":".join(parts)
        return "%04x:%02x:%02x.%x" % (dom, bus, slot, fn)
    keys = [k for k in ("controller", "bus", "target", "unit", "port", "device") if addr.get(k) is not None]
    return "%s:%s" % (kind or "address", ":".join("%s=%s" % (k, addr.get(k)) for k in keys))


def identity(el, path=None):
    """Plain-data identity of a device element: every key a person or a lookup might use."""
    kids = first_children(el)

    def get(tag, name):
        node = kids.get(tag)
        return None if node is None else node.get(name)

    target, addr = kids.get("target"), kids.get("address")
    ident = {
        "kind": el.tag,
        "path": path,
        "alias": get("alias", "name"),
        "target": None if target is None else target.get("dev"),
        "bus": None if target is None else target.get("bus"),
        "serial": _node_text(kids.get("serial")),
        "mac": get("mac", "address"),
        "source": _source(el, kids.get("source")) if "source" in kids else None,
        "address": _format_address(addr) if addr is not None else None,
    }
    if el.tag == "disk":
        ident["device"] = el.get("device", "disk")
        ident["wwn"] = _node_text(kids.get("wwn"))
    elif el.tag == "interface":
        ident["interfaceid"] = attr(el, "virtualport/parameters", "interfaceid")
        ident["model"] = get("model", "type")
    elif el.tag == "hostdev":
        ident["subsystem"] = el.get("type")
    return ident


def find_device(root, path):
    """The element at ``path`` (as returned by :func:`devices`) or None."""
    found = root.getroottree().xpath(path)
    return found[0] if found else None


# --- minimal edits -------------------------------------------------------------------------

def ensure_child(parent, tag, first=False, before=()):
    """Return ``parent``'s child ``tag``, creating it (with matching indentation) if missing.

    A new child goes first (``first``), or before the first existing child whose tag is in
    ``before``, or last.
    """
    child = parent.find(tag)
    if child is not None:
        return child
    child = etree.Element(tag)
    kids = list(parent)
    anchor = next((k for k in kids if k.tag in before), None)
    if anchor is not None and anchor is not kids[0]:
        child.tail = anchor.getprevious().tail
        anchor.addprevious(child)
        return child
    first = first or anchor is not None
    if not kids:
        outer = _indent_before(parent)
        parent.text = outer + "  "
        child.tail = outer
        parent.append(child)
    elif first:
        child.tail = parent.text
        parent.insert(0, child)
    else:
        last = kids[-1]
        child.tail = last.tail
        last.tail = kids[-2].tail if len(kids) > 1 else parent.text
        parent.append(child)
    return child


def _indent_before(el):
    """The whitespace (newline + indentation) that precedes ``el`` in its parent."""
    prev = el.getprevious()
    ws = prev.tail if prev is not None else (el.getparent().text if el.getparent() is not None else None)
    return ws if ws and ws.strip() == "" and "\n" in ws else "\n"


def remove_element(el):
    """Remove ``el`` from its parent, keeping the indentation of what follows it."""
    parent = el.getparent()
    if el.getnext() is None:  # the last child: its tail is the indentation of the closing tag
        prev = el.getprevious()
        if prev is not None:
            prev.tail = el.tail
        else:
            parent.text = None
    parent.remove(el)  # lxml removes the tail with the element


def set_attrs(el, attrs):
    """Set (value) or remove (None) attributes in place, keeping the others and their order."""
    for name, value in attrs:
        if value is None:
            if name in el.attrib:
                del el.attrib[name]
        else:
            el.set(name, value)


# --- semantic comparison -------------------------------------------------------------------

def canonical(node):
    """A comparable form of an element: libvirt's reformatting (whitespace, attribute order,
    quoting, namespace prefixes, comments, which libvirt drops on define) never shows up."""
    if isinstance(node, (str, bytes)):
        node = parse(node)
    children = tuple(canonical(c) for c in node if isinstance(c.tag, str))
    if node.tag == "devices":
        children = _controllers_sorted(children)
    elif node.getparent() is not None and node.getparent().tag == "devices":
        # Inside one device, libvirt parses children by name and writes them in its own order
        # (e.g. <alias> before <address>); only the order among same-named children can matter.
        children = tuple(sorted(children, key=lambda c: c[0]))
    txt = ""
    if not children:
        # Text interrupted by comments (<title>a<!-- x -->b</title>) is still one text.
        txt = ((node.text or "") + "".join(c.tail or "" for c in node)).strip()
    return (node.tag, tuple(sorted(node.attrib.items())), txt, children)


def _controllers_sorted(children):
    # libvirt keeps controllers sorted by (type, index) and re-sorts them on define (a
    # pcie-root-port it auto-added is appended first, sorted on the next define), so their order
    # carries no meaning. Every other device keeps its document order.
    def key(item):
        attrs = dict(item[1])
        index = attrs.get("index", "0")
        return (attrs.get("type", ""), int(index) if index.isdigit() else 0, index)

    others = tuple(c for c in children if c[0] != "controller")
    return others + tuple(sorted((c for c in children if c[0] == "controller"), key=key))
