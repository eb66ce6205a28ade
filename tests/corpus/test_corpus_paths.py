"""Device paths and identities on every file of libvirt's own test suite (no daemon needed).

The engine computes device paths from sibling counts (``_domxml.devices``) and identities from one
scan of a device's children (``_domxml.identity``), for speed. Both must equal what lxml's own
``getpath`` and ``find`` give on every domain of the corpus, all files, not only the sample.
"""

from __future__ import annotations

import os

from lxml import etree

import _corpuslib as cl
import _lablib

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml


def _reference_identity(el, path):
    """The identity as ``find`` lookups give it (the definition before the one-scan version)."""
    def get(sub, name):
        node = el.find(sub)
        return None if node is None else node.get(name)

    def text(sub):
        node = el.find(sub)
        return (node.text.strip() or None) if node is not None and node.text is not None else None

    addr = el.find("address")
    ident = {"kind": el.tag, "path": path, "alias": get("alias", "name"), "target": get("target", "dev"),
             "bus": get("target", "bus"), "serial": text("serial"), "mac": get("mac", "address"),
             "source": _domxml._source(el), "address": _domxml._format_address(addr) if addr is not None else None}
    if el.tag == "disk":
        ident.update(device=el.get("device", "disk"), wwn=text("wwn"))
    elif el.tag == "interface":
        ident.update(interfaceid=get("virtualport/parameters", "interfaceid"), model=get("model", "type"))
    elif el.tag == "hostdev":
        ident["subsystem"] = el.get("type")
    return ident


def test_device_paths_and_identities_match_lxml_on_the_whole_corpus():
    directory = _lablib.corpus_dir()
    files = cl.corpus_files(directory)
    assert len(files) > 300, "the corpus looks incomplete: %d files in %s" % (len(files), directory)
    checked, devices = 0, 0
    for name in files:
        with open(os.path.join(directory, name), "rb") as handle:
            try:
                root = _domxml.parse(handle.read())
            except _domxml.XMLError:
                continue
        tree = root.getroottree()
        ours = _domxml.devices(root)
        want = [el for el in (root.find("devices") if root.find("devices") is not None else [])
                if isinstance(el.tag, str) and el.tag in _domxml.ATTACHABLE_KINDS]
        assert [el for _p, el in ours] == want, name
        for path, el in ours:
            assert path == tree.getpath(el), (name, path, tree.getpath(el))
            assert tree.xpath(path)[0] is el, (name, path)
            assert _domxml.identity(el, path) == _reference_identity(el, path), (name, path)
            devices += 1
        # every element child (kinds=None: graphics, video, emulator... as upgrade readiness reads them)
        every = _domxml.devices(root, kinds=None)
        assert [el for _p, el in every] == [el for el in (root.find("devices") if root.find("devices") is not None
                                                          else []) if isinstance(el.tag, str)], name
        assert all(path == tree.getpath(el) for path, el in every), name
        checked += 1
    assert checked > 300 and devices > 3000, (checked, devices)
    print("paths and identities of %d devices in %d corpus files equal lxml's" % (devices, checked))


def test_path_of_a_repeated_devices_element_falls_back_to_getpath():
    root = etree.fromstring(b"<domain><devices><disk/><disk/></devices><devices><disk/></devices></domain>")
    assert [p for p, _el in _domxml.devices(root)] == ["/domain/devices[1]/disk[1]", "/domain/devices[1]/disk[2]"]
