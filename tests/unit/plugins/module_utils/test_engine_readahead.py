"""The engine's read-ahead (_engine._read_ahead): the same reads, in the same order, as reading each
domain where it is planned; errors arrive where that read would have raised them; nothing is read
after a lost connection; closing it stops the reader thread.
"""

from __future__ import annotations

import threading

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _engine
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    ConnectionLost, DomainVanished, LibvirtCallFailed,
)


class Reads:
    """An adapter that offers only ``read``: it records each call and its thread; ``fail`` maps a handle
    to the error its read raises."""

    def __init__(self, fail=None):
        self.calls, self.threads, self.fail = [], set(), fail or {}

    def read(self, handle):
        self.calls.append(handle)
        self.threads.add(threading.current_thread().name)
        if handle in self.fail:
            raise self.fail[handle]
        return "state-%s" % handle


def states(reads):
    out = []
    for read in reads:
        try:
            out.append(read.state())
        except Exception as exc:  # pylint: disable=broad-exception-caught
            out.append(exc)
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_every_domain_in_order_once(n):
    adapter = Reads()
    handles = list(range(n))
    assert states(_engine._read_ahead(adapter, handles, depth=4)) == ["state-%d" % i for i in handles]
    assert adapter.calls == handles
    if n > 1:
        assert adapter.threads == {"virtfleet-read"}   # off the planner's thread


def test_errors_arrive_with_their_domain_and_the_reads_go_on():
    vanished, failed = DomainVanished("gone"), LibvirtCallFailed("refused")
    adapter = Reads(fail={3: vanished, 5: failed})
    got = states(_engine._read_ahead(adapter, list(range(8)), depth=2))
    assert got[3] is vanished and got[5] is failed
    assert got[:3] == ["state-0", "state-1", "state-2"] and got[7] == "state-7"
    assert adapter.calls == list(range(8))


def test_nothing_is_read_after_a_lost_connection():
    lost = ConnectionLost("daemon gone")
    adapter = Reads(fail={2: lost})
    reads = list(_engine._read_ahead(adapter, list(range(10)), depth=3))
    assert len(reads) == 10                       # every domain still gets its outcome (not attempted)
    assert adapter.calls == [0, 1, 2]             # but nothing after the lost read is read
    for read in reads[2:]:
        with pytest.raises(ConnectionLost):
            read.state()


def test_closing_stops_the_reader():
    adapter = Reads()
    reads = _engine._read_ahead(adapter, list(range(1000)), depth=2)
    assert next(reads).state() == "state-0"
    reads.close()                                 # what the engine does when a rule ends the run
    assert not [t for t in threading.enumerate() if t.name == "virtfleet-read"]
    assert len(adapter.calls) <= 4                # the reader stopped within its read-ahead


def test_states_already_read_are_not_read_again():
    # A host-wide rule's preparation read every domain first; one read failed there and is read again.
    adapter = Reads()
    known = ["pre-0", None, "pre-2"]
    assert states(_engine._read_ahead(adapter, [0, 1, 2], known)) == ["pre-0", "state-1", "pre-2"]
    assert adapter.calls == [1]
