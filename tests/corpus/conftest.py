"""Corpus test: libvirt's own test-suite domain XML through the collection's modules, on the real daemon.

The corpus is ``tests/qemuxml2xmloutdata/*.xml`` of the libvirt source of the version this host runs
(``scripts/corpus.sh`` fetches it into ``.build/corpus/<version>/``). Each file is made definable here
(name ``vfcorpus-<run>-<file>``, fresh UUID, type qemu, ``/usr/bin/qemu-system-x86_64``; non-x86 files
are skipped) and defined with ``VIR_DOMAIN_DEFINE_VALIDATE``; files libvirt refuses here are skipped
with libvirt's message.

``VIRTFLEET_CORPUS_SAMPLE=N`` (default 60) runs a deterministic diverse sample (see
``_corpuslib.select``); ``VIRTFLEET_CORPUS_SAMPLE=all`` runs every file.

Every accepted domain goes through ``virt_policy`` (both rules: cache=none io=native, aliases of disks
and interfaces), then ``virt_disk_io_policy`` (cache=writeback io=threads) and ``virt_device_alias``
(default device types), all domains in one call each: check mode, real, real again, with
--diff. The judge (``test_corpus_modules.py``) is independent of the modules' own verification:

(a) the reported ``fixed`` changes, applied by plain lxml edits to the before-XML and defined as a
    twin domain (other name and UUID), must give exactly what the module left on the domain (libvirt's
    own normalisation happens to both), and every reported change must be in the definition;
(b) check mode reports the same (device path, rule) set the real run fixes;
(c) the second real run reports changed=false and leaves the definition as it was;
(d) no secret value of the definition appears in the module's JSON output or in its --diff.

Every domain and twin defined is undefined at the end (NVRAM, managed save, snapshot metadata),
also on failure. ``test_corpus_normalisation.py`` is the normalisation study (``-k normalisation``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import libvirt  # noqa: E402

import _corpuslib as cl  # noqa: E402
import _lablib  # noqa: E402

if os.path.join(cl.ROOT, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(cl.ROOT, "tests"))
from _target import TargetError, configure_basetemp, current  # noqa: E402

# VIRTFLEET_TARGET (tests/_target.py): the lab, or a host of the mixed-generation fleet, whose own
# release's corpus (scripts/corpus.sh reads the version from the host's dpkg database) is defined
# on its own daemon, with the modules run by its own Python.
TARGET = current()

LAB_SCRIPT = os.path.join(cl.ROOT, "scripts", "lab.sh")
LAB_ENV = "/run/virtfleet-lab.env"
# VIRTFLEET_CORPUS_COLLECTION: another collections root (scripts/corpus.sh --snapshot REV makes one).
COLLECTIONS = os.environ.get("VIRTFLEET_CORPUS_COLLECTION") or os.path.join(cl.ROOT, ".build", "collections")
MODULES = "ansible_collections.virtfleet.libvirt.plugins.modules."
DEFAULT_SAMPLE = "60"

# (module, options) in the order they run on every domain
# Each run has work left by the one before it, so every module changes every domain it can:
# virt_policy (both rules, one define per domain), then the single-rule entry points.
MODULE_RUNS = (
    ("virt_policy", {"rules": {"disk_io": {"cache": "none", "io": "native"},
                               "aliases": {"device_types": ["disk", "interface"]}}}),
    ("virt_disk_io_policy", {"cache": "writeback", "io": "threads"}),
    ("virt_device_alias", {}),
)


def sample_setting():
    return os.environ.get("VIRTFLEET_CORPUS_SAMPLE", DEFAULT_SAMPLE)


# --- collection -------------------------------------------------------------------------------

_SELECTION = {}


def selection():
    """(corpus directory, selected files): computed once per session (runs scripts/corpus.sh)."""
    if not _SELECTION:
        directory = _lablib.corpus_dir()
        _SELECTION["dir"] = directory
        _SELECTION["files"] = cl.select(directory, sample_setting())
    return _SELECTION["dir"], _SELECTION["files"]


def _secret_files(directory, files):
    out = []
    for f in files:
        with open(os.path.join(directory, f), "rb") as handle:
            data = handle.read()
        try:
            if cl.secrets_of(data):
                out.append(f)
        except cl.etree.XMLSyntaxError:
            pass
    return out


def pytest_generate_tests(metafunc):
    if "corpus_file" in metafunc.fixturenames or "secret_file" in metafunc.fixturenames:
        directory, files = selection()
        if "corpus_file" in metafunc.fixturenames:
            metafunc.parametrize("corpus_file", files, ids=[f[:-4] for f in files])
        if "secret_file" in metafunc.fixturenames:
            secret = _secret_files(directory, files)
            metafunc.parametrize("secret_file", secret, ids=[f[:-4] for f in secret])
    if "module_name" in metafunc.fixturenames:
        metafunc.parametrize("module_name", [m for m, _run in MODULE_RUNS])


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.corpus)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "corpus: libvirt's test-suite XML through the modules on a real libvirtd")
    configure_basetemp(config, "corpus")


def pytest_report_header(config):
    return "virtfleet target: %s" % TARGET


# --- the lab ----------------------------------------------------------------------------------

def _read_env(path):
    env = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                env[key] = value
    return env


@pytest.fixture(scope="session")
def lab_uri():
    """The URI the modules use (on the target host); ``conn`` is the test's own connection."""
    if TARGET.is_gen:
        try:
            TARGET.prepare(plugins=os.path.join(COLLECTIONS, "ansible_collections", "virtfleet", "libvirt", "plugins"))
        except TargetError as exc:
            pytest.fail(str(exc), pytrace=False)
        return TARGET.module_uri
    proc = subprocess.run(["bash", LAB_SCRIPT], capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail("scripts/lab.sh failed (rc %d): the corpus test needs a running libvirtd.\n%s"
                    % (proc.returncode, proc.stderr), pytrace=False)
    env = _read_env(LAB_ENV) if os.path.exists(LAB_ENV) else {}
    return env.get("LIBVIRT_URI") or proc.stdout.strip() or "qemu:///system"


@pytest.fixture(scope="session")
def conn(lab_uri):
    c = libvirt.open(TARGET.system_uri if TARGET.is_gen else lab_uri)
    yield c
    try:
        c.close()
    except libvirt.libvirtError:
        pass


# --- running a module -------------------------------------------------------------------------

@dataclass
class Call:
    module: str
    check: bool
    rc: int
    result: dict | None
    stdout: str
    stderr: str
    seconds: float
    domains: tuple

    @property
    def global_failure(self):
        """The call failed as a whole (no JSON, or failed without a per-domain outcome)."""
        return self.result is None or "domains" not in self.result

    def describe(self):
        if self.result is None:
            tail = [line for line in self.stderr.strip().splitlines() if line.strip()][-1:] or ["(no stderr)"]
            return "%s printed no JSON (rc %d): %s" % (self.module, self.rc, tail[0].strip())
        return "%s failed: %s" % (self.module, self.result.get("msg") or self.result.get("exception", "")[-300:])


def run_module(module, args, workdir, check=False, diff=True):
    """``python -m <module> args.json`` with the collection importable, as Ansible runs it on the host."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "args-%s.json" % uuidlib.uuid4().hex[:8])
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS, env.get("PYTHONPATH")) if p)
    start = time.monotonic()
    # On a generation target: that host's Python inside its tree (workdir is in its shared dir).
    proc = subprocess.run(TARGET.python_argv(["-m", MODULES + module, path], cwd=workdir), capture_output=True,
                          text=True, env=TARGET.module_env(env), cwd=workdir, timeout=1800, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = None
    return Call(module, check, proc.returncode, result, proc.stdout, proc.stderr, time.monotonic() - start,
                tuple(args.get("domains", ())))


def part_for(call, name):
    """The part of a (batched) module result that concerns one domain."""
    if call.result is None:
        return {"findings": [], "domain": None, "diff": []}
    prefix = name + " ("
    return {
        "findings": [f for f in call.result.get("findings", []) if f.get("domain") == name],
        "domain": next((d for d in call.result.get("domains", []) if d.get("name") == name), None),
        "diff": [d for d in call.result.get("diff", []) if str(d.get("before_header", "")).startswith(prefix)],
    }


# --- the session run --------------------------------------------------------------------------

@dataclass
class Step:
    """One module on one domain: the three calls and what the judge computed."""

    before: str = ""
    after: str = ""
    after_again: str = ""
    twin: str | None = None          # libvirt's rendering of the reported edits (renamed back)
    twin_error: str | None = None
    calls: dict = field(default_factory=dict)   # 'check'/'real'/'again' -> Call (possibly batched)


@dataclass
class Domain:
    filename: str
    name: str = ""
    uuid: str = ""
    prepared: str = ""
    skipped: str | None = None
    refused: str | None = None
    steps: dict = field(default_factory=dict)   # module -> Step


@dataclass
class CorpusRun:
    directory: str
    files: list
    domains: dict = field(default_factory=dict)   # filename -> Domain
    calls: list = field(default_factory=list)
    seconds: float = 0.0
    cleanup_errors: list = field(default_factory=list)
    failures: dict = field(default_factory=lambda: defaultdict(list))  # class -> [(file, module, message)]
    leaks: list = field(default_factory=list)     # (file, module, class, where)
    refs_shown: list = field(default_factory=list)
    reconnects: int = 0

    def accepted(self):
        return [d for d in self.domains.values() if not (d.skipped or d.refused)]


_RUN = {}


def _twin(definer, dom, xml_text):
    """libvirt's rendering of ``xml_text`` defined as another domain, renamed back; (xml, error)."""
    tname, tuuid = cl.domain_name(definer.run_id, dom.filename, "t"), str(uuidlib.uuid4())
    root = cl.etree.fromstring(xml_text.encode())
    cl.set_identity(root, tname, tuuid)
    try:
        definer.define(cl.etree.tostring(root, encoding="unicode"))
        return cl.rename(definer.xml(tname), tname, tuuid, dom.name, dom.uuid), None
    except libvirt.libvirtError as exc:
        return None, "libvirt refused the judge's twin: %s" % exc.get_error_message()
    finally:
        definer.undefine(tname)


def _calls(run, module, options, names, workdir, check):
    """One batched call; when it fails as a whole, one call per domain so that blame is per domain."""
    args = dict(options, uri=run["uri"], domains=list(names), backup_dir=os.path.join(workdir, "backups"))
    call = run_module(module, args, workdir, check=check)
    run["corpus"].calls.append(call)
    if not call.global_failure or len(names) == 1:
        return {name: call for name in names}
    # Blame per domain, but when the first few domains alone fail the same way as the batch, the
    # failure is not about any domain: give every domain that call instead of one call each.
    out, same = {}, 0
    for name in names:
        if same >= 3:
            out[name] = call
            continue
        single = run_module(module, dict(args, domains=[name]), workdir, check=check)
        run["corpus"].calls.append(single)
        out[name] = single
        same = same + 1 if single.global_failure and single.describe() == call.describe() else -len(names)
    return out


@pytest.fixture(scope="session")
def corpus_run(conn, lab_uri):
    """Define every selected file, run both modules on all accepted domains, judge, clean up."""
    directory, files = selection()
    corpus = CorpusRun(directory, files)
    definer = _lablib.Definer(conn)
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="vfcorpus-", dir=TARGET.shared)
    run = {"uri": lab_uri, "corpus": corpus}
    try:
        for filename in files:
            dom = Domain(filename)
            corpus.domains[filename] = dom
            try:
                dom.name, dom.uuid, dom.prepared = _lablib.prepare_file(directory, filename, definer)
            except cl.Skip as exc:
                dom.skipped = str(exc)
                continue
            try:
                definer.define(dom.prepared)
            except libvirt.libvirtError as exc:
                dom.refused = exc.get_error_message()
        accepted = corpus.accepted()
        names = [d.name for d in accepted]
        for module, options in MODULE_RUNS:
            if not names:
                break
            mdir = os.path.join(workdir, module)
            steps = {d.name: Step(before=definer.xml(d.name)) for d in accepted}
            for kind, check in (("check", True), ("real", False)):
                for name, call in _calls(run, module, options, names, mdir, check).items():
                    steps[name].calls[kind] = call
            for d in accepted:
                step = steps[d.name]
                step.after = definer.xml(d.name)
                part = part_for(step.calls["real"], d.name)
                entry = part["domain"] or {}
                if not (entry.get("changed") or entry.get("error")):
                    # Not redefined (or the module died without saying what it did): the definition
                    # must be exactly as it was.
                    step.twin = step.before
                    continue
                # Redefined (or restored after a failure): what libvirt makes of the reported edits.
                try:
                    expected = cl.apply_reported(step.before, part["findings"])
                    step.twin, step.twin_error = _twin(definer, d, expected)
                except cl.JudgeError as exc:
                    step.twin_error = str(exc)
            for name, call in _calls(run, module, options, names, mdir, False).items():
                steps[name].calls["again"] = call
            for d in accepted:
                steps[d.name].after_again = definer.xml(d.name)
                d.steps[module] = steps[d.name]
        corpus.seconds = time.monotonic() - start
        _RUN["run"] = corpus
        yield corpus
    finally:
        corpus.cleanup_errors = definer.cleanup()
        corpus.reconnects = definer.reconnects
        leftovers = list(_our_domains(definer.conn, definer.run_id))
        corpus.cleanup_errors += ["left defined: %s" % n for n in leftovers]


def _our_domains(conn, run_id):
    prefix = cl.PREFIX + run_id + "-"
    try:
        return [d.name() for d in conn.listAllDomains() if d.name().startswith(prefix)]
    except libvirt.libvirtError:
        return []


# --- report -----------------------------------------------------------------------------------

_STUDY = []


def record_failure(klass, filename, module, message):
    run = _RUN.get("run")
    if run is not None:
        run.failures[klass].append((filename, module, message))


def pytest_terminal_summary(terminalreporter):
    run = _RUN.get("run")
    write = terminalreporter.write_line
    if run is not None:
        terminalreporter.section("virtfleet corpus")
        skipped = Counter(d.skipped.split(" (")[0] for d in run.domains.values() if d.skipped)
        refused = Counter(_lablib.refusal_class(d.refused) for d in run.domains.values() if d.refused)
        write("corpus %s (VIRTFLEET_CORPUS_SAMPLE=%s): %d files, %d skipped (not x86), %d refused by libvirt, "
              "%d accepted; %.1f s for define + %d module calls (%.1f s in modules)" % (
                  run.directory, sample_setting(), len(run.files), sum(skipped.values()), sum(refused.values()),
                  len(run.accepted()), run.seconds, len(run.calls), sum(c.seconds for c in run.calls)))
        for klass, n in refused.most_common():
            write("  refused %3d x %s" % (n, klass.replace("\n", " ")))
        if run.failures:
            write("module/judge failure classes (%d):" % len(run.failures))
            for klass, items in sorted(run.failures.items(), key=lambda kv: -len(kv[1])):
                write("  %3d x %s" % (len(items), klass))
                for filename, module, message in items[:3]:
                    write("        %s [%s]: %s" % (filename, module, message[:300].replace("\n", " ")))
        for filename, module, klass, where in run.leaks:
            write("  LEAK %s [%s]: %s in %s" % (filename, module, klass, where))
        for filename, module, klass, where in run.refs_shown:
            write("  shown (reference, not a secret value) %s [%s]: %s in %s" % (filename, module, klass, where))
        if run.reconnects:
            write("WARNING: the connection to libvirtd was lost %d time(s) during the run (another suite "
                  "restarting the daemon?); module calls made meanwhile may show connection failures" % run.reconnects)
        if run.cleanup_errors:
            write("CLEANUP PROBLEMS: %s" % "; ".join(run.cleanup_errors))
    if _STUDY:
        terminalreporter.section("libvirt normalisation study")
        directory, _files = selection()
        for line in _lablib.report(_STUDY, directory).splitlines():
            write(line)


@pytest.fixture(scope="session")
def study_records():
    return _STUDY
