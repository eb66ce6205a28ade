"""Fault suite fixtures: a libvirtd that tests may SIGKILL and restart (scripts/faultd.sh).

The daemon is the session libvirtd of the dedicated user ``vffault`` (qemu:///session, TCG guests),
reached from root through its socket::

    qemu+unix:///session?socket=/home/vffault/.cache/libvirt/libvirt-sock

It is never qemu:///system, which other suites use at the same time. QEMU guests survive a kill of
libvirtd; the restarted daemon reconnects to them (start ~0.1-0.2 s, first start ever ~4 s).

``VIRTFLEET_TARGET=bullseye|bookworm|trixie`` (tests/_target.py): the same user and session daemon
inside that generation's tree (that release's libvirtd); ``.uri`` is then the socket seen from
here, ``.module_uri`` the same socket as a module on that host sees it (the default ``uri`` of
``run_fault_module``), images live in the target's shared directory and modules run with the
host's own Python. The in-process engine tests use ``.uri`` with the test's own bindings.

Needs root (tests are SKIPPED with that reason otherwise). If scripts/faultd.sh cannot bring the
daemon up, the tests FAIL (never skip silently). Do not run with pytest-xdist.

Fixtures
--------
``faultd`` (session): ``scripts/faultd.sh up``, then yields a ``_faultlib.FaultDaemon``:

- ``.uri``                 the URI above (pass it as the module's ``uri``)
- ``.kill()``              SIGKILL libvirtd; returns once it is gone (guests keep running)
- ``.start()``             start libvirtd if it is down; returns once it answers
- ``.restart()``           SIGTERM + start; returns once it answers
- ``.pid()``               libvirtd's pid, None when down (zombies do not count); ``.answers()`` -> bool
- ``.virsh(*args, check=True, timeout=120)``  virsh -c URI as root -> stdout
                           (check=False: the CompletedProcess)
- ``.conn``                cached libvirt connection, reopened automatically after kill/restart
- ``.lookup(name)``, ``.live_xml(name)``, ``.inactive_xml(name)``
- ``.new_name(suffix)``    ``vff-<8 hex>-<suffix>``: every domain of this suite starts with ``vff-``
- ``.image_dir(name)``, ``.make_image(name, basename, size=1 MiB)``  under ~vffault/images/NAME,
                           owned by vffault (QEMU runs as that user)
- ``.define(xml)``         defineXML (name must start with ``vff-``); returns the name
- ``.domains()``           names of the vff- domains there
- ``.cleanup(names=None)`` destroy (parallel) + undefine every vff- domain (or ``names``), delete
                           their image dirs; starts the daemon first if it is down
- ``.domain_type``         "qemu", ``.user`` "vffault", ``.home``, ``.images``

The session holds ``/run/virtfleet-faultd-tests.lock`` (a second pytest session on this suite
waits for it), removes stale vff- domains at the start and every vff- domain at the end.

``faultd_alive`` (autouse, function): after every test the daemon is started again if the test
left it down, so one failing test does not break the next.

``fault_guest`` (function): factory ``fault_guest(suffix, machine="q35", disks=())`` that boots
the busybox guest of ``make guest`` (~6 s under TCG) and returns a ``_faultlib.FaultGuest``
(``.name``, ``.console`` = tests/integration/_detach_lib.Console, ``.hotplug(tag, alias=True)`` ->
(target, alias, serial) once the guest lists it, ``.next_target()``). ``machine="pc-q35-5.2"``
gives native PCIe hotplug: an unplug takes ~6.2 s there (the long-removal case); ``"q35"`` (ACPI)
~0.1 s. ``disks``: [(target, alias, serial)] cold-plugged. Guests are removed by the session cleanup
(or call ``faultd.cleanup([guest.name])``). Outside fixtures: ``_faultlib.boot_guest(faultd, ...)``
(e.g. for a module-scoped guest).

``run_fault_module`` (function): ``run_fault_module(module, args, check=False)`` runs a collection
module the way Ansible does (tests/integration/_itlib.run_module: ``python -m <module> args.json``)
with ``uri`` defaulting to ``faultd.uri``; returns a ModuleRun (rc, result, stdout, stderr, failed).
``start_fault_module(module, args)`` starts it in the background instead and returns a
``_faultlib.ModuleProcess`` (``.running()``, ``.result(timeout)``) so the test can kill or restart
the daemon while the module waits.
"""

from __future__ import annotations

import os

import pytest

from _faultlib import FaultDaemon, FaultdError, LabError, ModuleProcess, SessionLock, boot_guest, faultd_sh, run_module
from _itlib import TARGET
from _target import TargetError, configure_basetemp

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "faults: kills/restarts a dedicated libvirtd (scripts/faultd.sh; root)")
    configure_basetemp(config, "faults")


def pytest_report_header(config):
    return "virtfleet target: %s" % TARGET


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def faultd():
    if os.geteuid() != 0:
        pytest.skip("the fault suite needs root: scripts/faultd.sh creates the user vffault and runs its libvirtd, "
                    "and the tests reach that daemon's socket as root")
    lock = SessionLock()
    try:
        lock.acquire()
        TARGET.prepare()
        faultd_sh("up", timeout=900)
        daemon = FaultDaemon()
        daemon.cleanup()  # stale vff- domains of an earlier, interrupted session
    except (FaultdError, TargetError, OSError) as exc:
        lock.release()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield daemon
    finally:
        try:
            daemon.cleanup()
        finally:
            daemon._drop()
            lock.release()


@pytest.fixture(autouse=True)
def faultd_alive(request):
    yield
    if "faultd" in request.fixturenames:
        daemon = request.getfixturevalue("faultd")
        if daemon.pid() is None or not daemon.answers():
            daemon.start()


@pytest.fixture
def fault_guest(faultd):
    def _boot(suffix, machine="q35", disks=()):
        try:
            return boot_guest(faultd, suffix, machine=machine, disks=disks)
        except LabError as exc:
            pytest.fail(str(exc), pytrace=False)
    return _boot


@pytest.fixture
def run_fault_module(faultd, tmp_path):
    def _run(module, args, check=False, timeout=600):
        args = dict(args)
        args.setdefault("uri", faultd.module_uri)
        return run_module(args, str(tmp_path / "work"), check=check, module=module, timeout=timeout)
    return _run


@pytest.fixture
def start_fault_module(faultd, tmp_path):
    def _start(module, args, check=False):
        args = dict(args)
        args.setdefault("uri", faultd.module_uri)
        return ModuleProcess(module, args, str(tmp_path / "work"), check=check)
    return _start
