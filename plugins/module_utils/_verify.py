# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification that knows libvirt (private, pure logic: no libvirt, no Ansible).

After a define, libvirt's re-read definition is compared with the XML that was sent. Three
kinds of difference are told apart:

- **libvirt's own normalisation**, which an unchanged redefine of the same XML also produces:
  controllers are kept sorted by (type, index) and libvirt's sort is not stable for USB
  companion controllers that share type and index, so controllers are paired by
  (type, index, model), never by position; libvirt fills in defaults (an added attribute or
  element is never a loss of ours); and the value changes listed in :data:`NORMALISED_VALUES`
  (each measured on libvirt's own test-suite domains, see docs/corpus.md).
- **a planned edit libvirt did not keep** (an alias it drops silently on a device that cannot
  carry one): reported per edit, so the engine can skip that device instead of failing the domain;
- **a real loss**: an element, attribute or text that was sent and is gone or different.

Differences name the element of the document (``controller type=usb index=0 model=none``,
``disk vda``) and an XPath that selects it in the XML that was sent, and say what was dropped,
added or changed.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml

DROPPED, ADDED, CHANGED = "dropped", "added", "changed"

# (device tag, child path, attribute): values libvirt assigns itself and may renumber on a
# redefine of unchanged XML. A change of one of these is normalisation, not a loss.
NORMALISED_VALUES = frozenset((
    # virtio-serial ports of consoles/channels are allocated by libvirt when the definition is
    # parsed (virDomainVirtioSerialAddrAssign); a console given without a port gets a new one.
    ("console", "address", "port"),
    ("channel", "address", "port"),
    ("console", "target", "port"),
))


def _kids(el):
    return [c for c in el if isinstance(c.tag, str)]


def _key(el, in_devices):
    if in_devices and el.tag == "controller":
        return ("controller", el.get("type"), el.get("index", "0"), el.get("model"))
    return (el.tag,)


def pair_children(a, b):
    """Pair the element children of ``a`` and ``b``: same key (tag; controllers by type, index and
    model), in document order within a key. Returns (pairs, only_in_a, only_in_b)."""
    return _pair(_kids(a), _kids(b), a.tag == "devices")


def _pair(kids_a, kids_b, in_devices):
    groups_b = {}
    for child in kids_b:
        groups_b.setdefault(_key(child, in_devices), []).append(child)
    pairs, only_a = [], []
    taken = {}
    for child in kids_a:
        key = _key(child, in_devices)
        index = taken.get(key, 0)
        bucket = groups_b.get(key, [])
        if index < len(bucket):
            pairs.append((child, bucket[index]))
            taken[key] = index + 1
        else:
            only_a.append(child)
    only_b = []
    for key, bucket in groups_b.items():
        only_b.extend(bucket[taken.get(key, 0):])
    return pairs, only_a, only_b


def device_ancestor(el):
    """The device element (child of <devices>) that contains ``el``, or None."""
    node = el
    while node is not None:
        parent = node.getparent()
        if parent is not None and parent.tag == "devices":
            return node
        node = parent
    return None


def label(el):
    """The document element as a person names it: type, index, target, alias."""
    if el is None:
        return "domain"
    dev = device_ancestor(el)
    if dev is None:
        return "<%s>" % _local(el)
    parts = [dev.tag]
    if dev.tag == "controller":
        parts += ["type=%s" % dev.get("type"), "index=%s" % dev.get("index", "0")]
        if dev.get("model"):
            parts.append("model=%s" % dev.get("model"))
    else:
        target = _domxml.attr(dev, "target", "dev") or _domxml.attr(dev, "mac", "address")
        if target:
            parts.append(target)
        elif dev.get("type"):
            parts.append("type=%s" % dev.get("type"))
        port = _domxml.attr(dev, "target", "port")
        if port is not None and not target:
            parts.append("port=%s" % port)
    alias = _domxml.attr(dev, "alias", "name")
    if alias:
        parts.append("alias=%s" % alias)
    return " ".join(parts)


def _text(el, nodes):
    # ``nodes``: list(el), already listed by the caller. Text interrupted by comments
    # (<title>a<!-- x -->b</title>) is still one text.
    return ((el.text or "") + "".join(c.tail or "" for c in nodes if not isinstance(c.tag, str))).strip()


def _path(el):
    return el.getroottree().getpath(el)


def _child_path(dev, el):
    """Path of ``el`` relative to its device (``driver``, ``source/host``), '' for the device."""
    names = []
    node = el
    while node is not None and node is not dev:
        names.append(node.tag)
        node = node.getparent()
    return "/".join(reversed(names))


def _normalised(el, attr):
    dev = device_ancestor(el)
    if dev is None:
        return False
    return (dev.tag, _child_path(dev, el), attr) in NORMALISED_VALUES


def compare(sent, after, shown=None):
    """Differences from ``sent`` (root element) to ``after`` (root element), as dicts with
    ``kind`` (dropped/added/changed), ``element`` (label), ``path`` (XPath in ``sent``, or in
    ``after`` for additions), ``what``, ``before``, ``after`` and ``normalisation`` (True when it is
    libvirt's own normalisation, never a loss)."""
    shown = shown or (lambda _name, value, **_kw: value)
    out = []
    _walk(sent, after, out, shown)
    return [d for d in out if not d["normalisation"]] + [d for d in out if d["normalisation"]]


def _walk(a, b, out, shown):
    # One pass over each element's attributes and children (lxml creates a proxy per access).
    attrs_a, attrs_b = dict(a.items()), dict(b.items())
    if attrs_a != attrs_b:
        for name in sorted(set(attrs_a) | set(attrs_b)):
            va, vb = attrs_a.get(name), attrs_b.get(name)
            if va == vb:
                continue
            kind = ADDED if va is None else DROPPED if vb is None else CHANGED
            out.append({"kind": kind, "element": label(a), "path": _path(a), "what": "attribute %s" % name,
                        "before": shown(name, va, attrs=attrs_a), "after": shown(name, vb, attrs=attrs_b),
                        "normalisation": kind == ADDED or (kind == CHANGED and _normalised(a, name))})
    nodes_a, nodes_b = list(a), list(b)
    kids_a = [c for c in nodes_a if isinstance(c.tag, str)]
    kids_b = [c for c in nodes_b if isinstance(c.tag, str)]
    if not kids_a and not kids_b:
        ta, tb = _text(a, nodes_a), _text(b, nodes_b)
        if ta != tb:
            out.append({"kind": CHANGED if ta and tb else (ADDED if tb else DROPPED), "element": label(a),
                        "path": _path(a), "what": "text", "before": shown("", ta), "after": shown("", tb),
                        "normalisation": not ta})
        return
    pairs, only_a, only_b = _pair(kids_a, kids_b, a.tag == "devices")
    for ca, cb in pairs:
        _walk(ca, cb, out, shown)
    for ca in only_a:
        out.append({"kind": DROPPED, "element": label(ca), "path": _path(ca), "what": "element <%s>" % _local(ca),
                    "before": _short(ca, shown), "after": None, "normalisation": False})
    for cb in only_b:
        out.append({"kind": ADDED, "element": label(cb), "path": _path(cb), "what": "element <%s>" % _local(cb),
                    "before": None, "after": _short(cb, shown), "normalisation": True})


def _local(el):
    tag = el.tag
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def _short(el, shown):
    attrs = " ".join("%s='%s'" % (k, shown(k, v, attrs=dict(el.attrib))) for k, v in el.attrib.items())
    return "<%s%s%s>" % (_local(el), " " if attrs else "", attrs)


def describe(diff):
    """One line for a person: ``disk vda: attribute io dropped ('native' -> None) at /domain/...``."""
    if diff["kind"] == CHANGED:
        change = "changed %r -> %r" % (diff["before"], diff["after"])
    elif diff["kind"] == DROPPED:
        change = "dropped (was %r)" % (diff["before"],)
    else:
        change = "added (%r)" % (diff["after"],)
    return "%s: %s %s (at %s)" % (diff["element"], diff["what"], change, diff["path"])


def device_pairs(sent, after):
    """{path of the device in ``sent``: the same device's element in ``after``}."""
    ds, da = sent.find("devices"), after.find("devices")
    if ds is None or da is None:
        return {}
    pairs, _a, _b = pair_children(ds, da)
    return {_path(x): y for x, y in pairs}


def missing_edits(edits, sent, after):
    """The planned edits libvirt did not keep: [(edit, what)] where ``what`` says what is missing.

    ``edits`` address devices by their path in the patched document ``sent``.
    """
    pairs = device_pairs(sent, after)
    missing = []
    for edit in edits:
        dev = _domxml.find_device(sent, edit.device)
        got_dev = pairs.get(_path(dev)) if dev is not None else None
        if got_dev is None:
            missing.append((edit, "the device is gone"))
            continue
        node = got_dev.find(edit.child) if edit.child else got_dev
        for name, value in edit.attrs:
            got = node.get(name) if node is not None else None
            if got != value:
                missing.append((edit, "%s %s=%r was not kept (libvirt has %r)" % (
                    "<%s>" % edit.child if edit.child else "the device", name, value, got)))
                break
    return missing


def drop_edits(sent_root, edits):
    """Undo ``edits`` that added a child element (an alias libvirt refused) on a copy of ``sent``:
    what the comparison should expect once those edits are known not to have stuck."""
    for edit in edits:
        dev = _domxml.find_device(sent_root, edit.device)
        if dev is None or not edit.child:
            continue
        child = dev.find(edit.child)
        if child is not None and set(child.attrib) <= {n for n, _v in edit.attrs}:
            _domxml.remove_element(child)
    return sent_root
