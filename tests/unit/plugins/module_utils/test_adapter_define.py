"""How the adapter classifies libvirt's refusals of a define (real libvirtError objects, no daemon)."""

from __future__ import annotations

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _adapter  # noqa: E402
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import DefineFailed  # noqa: E402

SCHEMA = ("internal error: Unable to parse RelaxNG schema '/usr/share/libvirt/schemas/domain.rng': Error type "
          "'int' is not exported by type library 'http://www.w3.org/2001/XMLSchema-datatypes'")


def _error(code, text):
    exc = libvirt.libvirtError(text)
    exc.err = (code, 0, text, 2, None, None, None, 0, 0)
    return exc


class _Conn:
    def __init__(self, exc):
        self.exc = exc

    def defineXMLFlags(self, _xml, _flags):
        raise self.exc

    @staticmethod
    def isAlive():
        return True


def _define(exc):
    adapter = object.__new__(_adapter.Adapter)
    adapter.conn, adapter.uri = _Conn(exc), "test:///fake"
    with pytest.raises(DefineFailed) as caught:
        adapter.define("<domain/>")
    return caught.value


def test_a_schema_libvirtd_could_not_load_is_transient():
    exc = _define(_error(libvirt.VIR_ERR_INTERNAL_ERROR, SCHEMA))
    assert exc.details["transient"] is True and exc.details["libvirt_code"] == libvirt.VIR_ERR_INTERNAL_ERROR


@pytest.mark.parametrize("code, text", [
    (libvirt.VIR_ERR_XML_DETAIL, "XML document failed to validate against schema: Unable to validate doc against "
                                 "/usr/share/libvirt/schemas/domain.rng"),
    (libvirt.VIR_ERR_CONFIG_UNSUPPORTED, "unsupported configuration: native I/O needs either no disk cache or "
                                         "directsync cache mode"),
    (libvirt.VIR_ERR_INTERNAL_ERROR, "internal error: unexpected address type"),
])
def test_a_refusal_of_our_definition_is_final(code, text):
    assert _define(_error(code, text)).details["transient"] is False
