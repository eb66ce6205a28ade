# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine: every rule, every selected domain of one host, one safe sequence (private).

One call per host. For each selected domain (read and planned in name order; changed ``workers``
at a time, each through the whole sequence on its own; results in name order):

    read (inactive SECURE + live)  ->  plan every rule (pure)       [check mode stops here]
    -> back up (fsynced)  ->  RE-READ and compare with what was planned from
       (changed: ``conflict``, vanished: ``vanished``; nothing is defined)
    -> ONE define (VALIDATE) with every rule's edits  ->  re-read
    -> verify: libvirt's own normalisation is not a loss; a planned edit libvirt did not keep on
       one device (an alias it drops) is that device's ``skipped`` finding; anything else lost
       -> restore, but only while the definition is still the one we wrote, then verify the restore.

A lost connection stops the host: a domain in flight is ``unknown`` (define sent, outcome
unknown) or ``fixed`` but unverified, no domain starts after it (``not_attempted``), and
everything already known is returned. Real runs hold the host lock (:mod:`_hostlock`), so two virtfleet
runs against one daemon wait for each other; against other tools the re-read guard protects.

The window that remains is between the re-read and the define (libvirt has no compare-and-swap):
one local ``virDomainGetXMLDesc`` round trip, measured in benchmarks/engine_window.py.

The adapter only offers libvirt primitives (select, read, reread, definition, define, host facts); the
decisions are all here, so unit tests run this sequence as written with a fake adapter.
"""

from __future__ import annotations

import dataclasses
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _backup, _domxml, _plan, _readiness, _redact, _verify, _vocab
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    BackupFailed,
    ConnectionLost,
    DefineFailed,
    DomainVanished,
    InvalidRequest,
    XMLError,
)

MAX_LISTED = 8   # differences listed in one message
READ_AHEAD = 16  # domains read ahead of the planner (benchmarks/engine_scale.py)
DEFINE_ATTEMPTS = 2  # a define libvirtd could not validate (its schema failed to load) is tried once more


@dataclasses.dataclass
class Outcome:
    """What happened to one domain in this run."""

    name: str
    uuid: str
    active: bool = False
    persistent: bool = True
    status: str = _vocab.COMPLIANT
    changed: bool = False
    backup: str = None
    error: str = None
    findings: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)
    diff: dict = None
    normalised: list = dataclasses.field(default_factory=list)
    annotations: dict = dataclasses.field(default_factory=dict)


class Engine:
    """One host's run: ``Engine(adapter, rules, ...).run(domains, exclude) -> result dict``."""

    def __init__(self, adapter, rules, check_mode=False, diff_mode=False, backup_dir=_backup.DEFAULT_BACKUP_DIR,
                 details=False, lock=None, redact=None, workers=1, blockers=None):
        self.adapter = adapter
        self.rules = rules
        # blockers(state) -> [(device, message)]: what this host's libvirt refuses at ANY define of the
        # definition (a VNC password longer than 8 characters on libvirt >= 8.0). A domain with changes
        # and a blocker is ``blocked`` in both modes: the define that would certainly fail is not sent.
        self.blockers = blockers
        self._annotators = [rule for rule in rules if rule.annotate is not None]
        self._preparers = [rule for rule in rules if rule.prepare is not None]
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.backup_dir = backup_dir
        self.details = details
        self.lock = lock                      # a context manager factory (the host lock), real runs only
        self.redact = redact or _redact.redact_xml
        self._backup_ready = False
        self._backup_lock = threading.Lock()
        # Domains changed at once (each through the whole sequence below): libvirt writes and
        # fsyncs a definition per define, so several in flight overlap that wait.
        self.workers = max(1, int(workers))

    # --- the run -------------------------------------------------------------------------

    def run(self, domains=None, exclude=None):
        handles = self.adapter.select(domains, exclude)
        selected = [(self.adapter.name_of(h), self.adapter.uuid_of(h)) for h in handles]
        for rule in self.rules:
            if rule.precheck is not None:
                rule.precheck(selected)     # the request against the selection, before anything is read
        guard = self.lock() if (self.lock is not None and not self.check_mode) else _Nothing()
        with guard:
            # 1. Read and plan every domain (pure). A bad request (an alias that selects no device)
            #    fails the whole run here, before anything is changed; a definition that cannot be
            #    parsed fails its domain alone.
            outcomes, work, lost = [], [], None
            known = None
            if self._preparers:
                states = self._read_all(handles)
                known = [states.get(uuid) for _name, uuid in selected]
            reads = _read_ahead(self.adapter, handles, known)
            try:
                for (name, uuid), read in zip(selected, reads):
                    out = Outcome(name, uuid)
                    outcomes.append(out)
                    if lost is not None:
                        self._not_attempted(out)
                        continue
                    try:
                        planned = self._read_and_plan(read, out)
                    except ConnectionLost as exc:
                        lost = exc
                        self._not_attempted(out, exc)
                        continue
                    if planned is not None:
                        work.append((out, planned))
            finally:
                reads.close()   # a rule's InvalidRequest ends the run: the reader stops too
            # 2. Change them, each re-read just before its own define.
            lost = self._change_all(work, lost)
        return self._result(outcomes, lost, getattr(guard, "waited", 0.0))

    def _change_all(self, work, lost):
        """Run the safety sequence of every planned domain; ``workers`` domains at a time.

        A lost connection stops the host: no domain starts after it, the ones in flight report
        what they know. Returns the first ConnectionLost, or ``lost`` as given.
        """
        stopped = threading.Event()
        first, first_lock = [], threading.Lock()
        if lost is not None:
            stopped.set()
            first.append(lost)

        def one(item):
            out, planned = item
            if stopped.is_set():
                return self._not_attempted(out)
            try:
                self._change(out, *planned)
            except ConnectionLost as exc:
                with first_lock:
                    first.append(exc)
                stopped.set()
                if out.status in (_vocab.COMPLIANT, _vocab.DRIFT):
                    self._not_attempted(out, exc)
            return None

        if self.workers == 1 or len(work) < 2:
            for item in work:
                one(item)
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="virtfleet-define") as pool:
                for _done in pool.map(one, work):
                    pass
        return first[0] if first else None

    def _not_attempted(self, out, exc=None):
        out.findings = [dict(f, status=_vocab.NOT_ATTEMPTED) if f["status"] == _vocab.DRIFT else f for f in out.findings]
        out.status = _vocab.NOT_ATTEMPTED
        out.error = exc.msg if exc is not None else (
            "not attempted: the connection to libvirt was lost earlier in this run; rerun when the daemon is back")

    # --- one domain: the safety sequence, top to bottom --------------------------------------

    def _read_all(self, handles):
        """Host-wide rules (machine-type groups) see every domain before any is planned: read them all first.

        Only when such a rule runs; a read that fails here is read (and reported) again by the plan loop.
        """
        states = {}
        for handle in handles:
            try:
                state = self.adapter.read(handle)
            except (DomainVanished, ConnectionLost):
                continue
            states[state.uuid] = state
        for rule in self._preparers:
            try:
                rule.prepare(list(states.values()))
            except XMLError:
                rule.prepare([st for st in states.values() if _parses(st)])
        return states

    def _read_and_plan(self, read, out):
        """Plan one domain from its read (a :class:`_Read`); returns what ``_change`` needs, or None when
        nothing is to be done."""
        try:
            state = read.state()
        except DomainVanished as exc:
            self._set(out, _vocab.VANISHED, "vanished before it was read: %s. Nothing was changed." % exc.msg)
            return None
        out.active, out.persistent = state.active, state.persistent
        try:
            changes = self._plan(state)
            edits = _plan.domain_edits(changes)
            # Check mode needs the patched text only to show it (--diff).
            patch = edits and (self.diff_mode or not self.check_mode)
            patched = _plan.apply_edits(state.inactive_xml, edits) if patch else state.inactive_xml
        except XMLError as exc:
            self._set(out, _vocab.FAILED, "cannot be audited: %s Nothing was changed; the other domains were "
                      "checked." % exc.msg)
            return None
        if self.details:
            out.details = self._describe(state.inactive_root())
        for rule in self._annotators:
            out.annotations.update(rule.annotate(state))
        if not edits:
            self._findings(out, changes, "")
            return None
        blocked = self.blockers(state) if self.blockers is not None else None
        if blocked:
            # libvirt on this host refuses this definition at every define: say so in both modes, send nothing.
            self._findings(out, changes, _vocab.BLOCKED, "%s. Nothing was changed; libvirt on this host refuses "
                           "every define of this definition until that is fixed" % "; ".join(m for _d, m in blocked))
            return None
        out.changed = True   # would be changed: final for check mode (Ansible's convention), decided below otherwise
        self._diff(out, state.inactive_xml, patched)
        self._findings(out, changes, _vocab.DRIFT)
        if self.check_mode:
            return None
        return state, changes, edits, patched

    def _change(self, out, state, changes, edits, patched):
        """The safety sequence for one domain, top to bottom."""
        out.changed, out.diff = False, None
        # Back up the definition we planned from (0600, fsynced) before anything is defined.
        try:
            self._prepare_backups()
            out.backup = _backup.write_backup(self.backup_dir, state.name, state.uuid, state.inactive_xml)
        except (BackupFailed, InvalidRequest) as exc:
            return self._findings(out, changes, _vocab.FAILED, exc.msg)

        # Immediately before the define: is the definition still the one we planned from? A define the
        # daemon could not even check (it failed to load its own schema) changed nothing, so the guard
        # and the define run once more; any other refusal, or a second one, is final.
        for attempt in range(1, DEFINE_ATTEMPTS + 1):
            try:
                current = self.adapter.definition(state.uuid)
            except DomainVanished:
                return self._findings(out, changes, _vocab.VANISHED, (
                    "the domain was undefined by someone else after it was read; it was not defined again. "
                    "Nothing was changed"))
            if not _same(current, state.inactive_xml):
                what = self._listed(_verify.compare(state.inactive_root(), _domxml.parse(current), shown=self._shown))
                return self._findings(out, changes, _vocab.CONFLICT, (
                    "someone else changed the definition after it was read (%s); nothing was changed. Rerun to plan "
                    "from the new definition" % what))
            try:
                self.adapter.define(patched)
                break
            except DefineFailed as exc:
                if exc.details.get("transient") and attempt < DEFINE_ATTEMPTS:
                    continue
                return self._findings(out, changes, _vocab.FAILED, (
                    "libvirt refused the patched definition: %s.%s Nothing was changed; the definition read "
                    "before the attempt is saved at %s" % (self._scrub(exc.msg, state), _remedy(exc), out.backup)))
            except ConnectionLost:
                self._findings(out, changes, _vocab.UNKNOWN, (
                    "the define was sent and the connection to libvirt broke: whether it was applied is unknown. "
                    "The definition before it is saved at %s; rerun when the daemon is back (it converges)" % out.backup))
                raise

        try:
            after = self.adapter.reread(state.uuid)
        except DomainVanished:
            return self._findings(out, changes, _vocab.VANISHED, (
                "the domain was undefined by someone else right after it was defined; the definition before "
                "this run is saved at %s" % out.backup))
        except ConnectionLost:
            out.changed = True
            self._findings(out, changes, _vocab.UNKNOWN, (
                "libvirt accepted the define, then the connection broke before it could be verified. The "
                "definition before it is saved at %s; rerun when the daemon is back to verify" % out.backup))
            raise
        self._verify(out, state, changes, edits, patched, after)
        return out

    def _verify(self, out, state, changes, edits, patched, after):
        sent = _domxml.parse(patched)
        got = after.inactive_root()
        # A planned alias libvirt did not keep is that device's finding, not the domain's failure.
        missing = _verify.missing_edits(edits, sent, got)
        dropped_aliases = [(e, why) for e, why in missing if e.child == "alias"]
        lost_edits = [(e, why) for e, why in missing if e.child != "alias"]
        if dropped_aliases:
            _verify.drop_edits(sent, [e for e, _why in dropped_aliases])
        diffs = _verify.compare(sent, got, shown=self._shown)
        losses = [d for d in diffs if not d["normalisation"]]
        out.normalised = [_verify.describe(d) for d in diffs if d["normalisation"]][:MAX_LISTED]
        # An alias edit libvirt did not keep, per device (another rule's edit of the same device stands).
        dropped = dict(dropped_aliases)
        dropped_paths = {e.device: why for e, why in dropped_aliases}
        replan = self._plan(after)
        leftover = [c for c in replan if c.actionable and not (
            c.device.get("path") in dropped_paths and all(e.child == "alias" for e in c.edits))]
        if losses or lost_edits:
            problems = ["planned change not kept: %s %s" % (e.device, why) for e, why in lost_edits]
            problems += [_verify.describe(d) for d in losses]
            if any(d["kind"] != _verify.DROPPED for d in losses):
                # A value we did not set is different: libvirt, or another tool right after our define.
                # A restore could overwrite that tool's change, so nothing is restored.
                out.changed = True
                return self._findings(out, changes, _vocab.FAILED, (
                    "after the define, libvirt's definition differs from the plan: %s. Values this run did not set "
                    "changed, possibly by another tool right after this run's define, so the definition was left as "
                    "it is; the definition before this run is saved at %s" % (
                        "; ".join(problems[:MAX_LISTED]), out.backup)))
            try:
                restored = self._restore(out, state, after)
            except ConnectionLost:
                self._findings(out, changes, _vocab.UNKNOWN, (
                    "after the define libvirt's definition differed from the plan (%s), and the connection broke "
                    "while the previous definition was being restored: the domain's state is unknown. The "
                    "definition before this run is saved at %s" % ("; ".join(problems[:MAX_LISTED]), out.backup)))
                raise
            return self._findings(out, changes, _vocab.FAILED, (
                "after the define, libvirt's definition differs from the plan: %s. %s" % (
                    "; ".join(problems[:MAX_LISTED]), restored)))
        # Changed unless every edit was an alias libvirt did not keep (then the define was a no-op).
        out.changed = any(e not in dropped for e in edits)
        self._diff(out, state.inactive_xml, after.inactive_xml)
        # pending_restart is what the running domain shows now, after the fix.
        pending = {c.device.get("path") for c in replan if c.pending_restart}
        final = []
        for change in changes:
            if change.actionable and change.edits and all(e in dropped for e in change.edits):
                final.append(dataclasses.replace(change, status=_vocab.SKIPPED, edits=(), pending_restart=False,
                                                 message="%s; libvirt does not keep an alias on this device (%s): "
                                                         "left as it is" % (change.message,
                                                                            dropped_paths[change.device["path"]])))
            elif change.actionable:
                final.append(dataclasses.replace(change, pending_restart=change.device.get("path") in pending))
            else:
                final.append(change)
        if self.details:
            out.details = self._describe(got)
        if leftover:
            return self._findings(out, final, _vocab.FAILED, "the change was kept but did not converge: %s" % (
                "; ".join(c.message for c in leftover[:MAX_LISTED])))
        return self._findings(out, final, _vocab.FIXED)

    def _restore(self, out, state, after):
        """Put the definition we read back, but only while the definition is still the one we wrote."""
        try:
            current = self.adapter.definition(state.uuid)
        except DomainVanished:
            return ("The domain was undefined by someone else meanwhile; nothing was restored. The definition "
                    "before this run is saved at %s." % out.backup)
        if not _same(current, after.inactive_xml):
            return ("The definition was changed again by someone else after this run's define, so it was left as "
                    "it is; the definition before this run is saved at %s (restore it by hand with 'virsh define %s' "
                    "if that is right)." % (out.backup, out.backup))
        try:
            self.adapter.define(state.inactive_xml)
        except DefineFailed as exc:
            out.changed = True
            return ("Restoring the previous definition FAILED (%s): the domain keeps the patched definition; "
                    "restore it by hand with 'virsh define %s'." % (self._scrub(exc.msg, state), out.backup))
        restored = self.adapter.reread(state.uuid)
        losses = [d for d in _verify.compare(state.inactive_root(), restored.inactive_root(), shown=self._shown)
                  if not d["normalisation"]]
        if losses:
            out.changed = True
            return ("The previous definition was restored from %s, but libvirt's definition still differs from it: "
                    "%s." % (out.backup, "; ".join(_verify.describe(d) for d in losses[:MAX_LISTED])))
        return "The previous definition was restored and verified (backup %s)." % out.backup

    # --- helpers -------------------------------------------------------------------------

    def _plan(self, state):
        changes = []
        for rule in self.rules:
            for change in rule.plan(state):
                changes.append(change if change.check == rule.check else
                               dataclasses.replace(change, check=rule.check))
        return changes

    def _describe(self, root):
        out = {}
        for rule in self.rules:
            if rule.describe is not None:
                out.update(rule.describe(root))
        return out

    def _prepare_backups(self):
        with self._backup_lock:
            if not self._backup_ready:
                _backup.prepare_backup_dir(self.backup_dir)
                self._backup_ready = True

    def _diff(self, out, before, after):
        if self.diff_mode:
            out.diff = {
                "before_header": "%s (inactive XML, secrets redacted)" % out.name,
                "after_header": "%s (inactive XML, secrets redacted)" % out.name,
                "before": self.redact(before),
                "after": self.redact(after),
            }

    @staticmethod
    def _shown(name, value, attrs=None):
        return _redact.shown(name, value, attrs=attrs)

    @staticmethod
    def _scrub(text, state):
        """libvirt's error text with the domain's secrets and inline credentials replaced."""
        return _redact.scrub(text, _redact.secret_values(state.inactive_root()))

    def _listed(self, diffs):
        shown = [_verify.describe(d) for d in diffs[:MAX_LISTED]]
        more = len(diffs) - len(shown)
        return "; ".join(shown) + (" and %d more" % more if more > 0 else "") if shown else "reformatted only"

    def _set(self, out, status, error):
        out.status, out.error = status, error
        return out

    def _findings(self, out, changes, status, error=None):
        """Record the findings of ``changes``: actionable ones get ``status``, report-only keep theirs."""
        out.findings = []
        for change in changes:
            item = _plan.finding(change, status if change.actionable else "")
            if error is not None and change.actionable:
                item["message"] = "%s. %s: %s" % (change.message, status.upper(), error)
            out.findings.append(item)
        if error is not None:
            out.status, out.error = status, error
        else:
            out.status = _domain_status(out.findings)
        return out

    # --- the result ----------------------------------------------------------------------

    def _result(self, outcomes, lost, waited):
        findings, domains, diffs = [], [], []
        for o in outcomes:
            findings.extend(o.findings)
            entry = {"name": o.name, "uuid": o.uuid, "active": o.active, "persistent": o.persistent,
                     "status": o.status, "changed": o.changed, "backup": o.backup, "error": o.error,
                     "findings": len(o.findings)}
            if o.normalised:
                entry["normalised"] = o.normalised
            entry.update(o.details)
            entry.update(o.annotations)
            domains.append(entry)
            if o.diff is not None and (o.changed or self.check_mode):
                diffs.append(o.diff)
        changed = sum(1 for o in outcomes if o.changed)
        summary = _plan.summarize(findings, len(outcomes), changed)
        summary["by_domain_status"] = {s: sum(1 for o in outcomes if o.status == s) for s in _vocab.DOMAIN_OUTCOMES}
        result = {"changed": changed > 0, "findings": findings, "domains": domains, "summary": summary,
                  "connection_lost": lost is not None}
        if lost is not None:
            result["connection_error"] = lost.msg
        if waited:
            result["lock_waited"] = round(waited, 3)
        if self.diff_mode:
            result["diff"] = diffs
        return result


def _domain_status(findings):
    statuses = {f["status"] for f in findings}
    for status in (_vocab.FAILED, _vocab.BLOCKED, _vocab.FIXED, _vocab.DRIFT, _vocab.PENDING, _vocab.SKIPPED):
        if status in statuses:
            return status
    return _vocab.COMPLIANT


_VNC_REFUSED = re.compile(r"VNC password is (\d+) characters long")


def _remedy(exc):
    """What to do about a refusal libvirt words without a fix (matched by code and libvirt's own words).

    A transient refusal (the daemon's, not the XML's) is final only after DEFINE_ATTEMPTS of them.
    """
    if exc.details.get("transient"):
        return (" It was the same after %d attempts: libvirtd could not load its own schema; check "
                "/usr/share/libvirt/schemas and the daemon's log." % DEFINE_ATTEMPTS)
    match = _VNC_REFUSED.search(exc.msg or "") if exc.details.get("libvirt_code") == 67 else None
    if match:
        return " Fix: %s." % _readiness.vnc_remedy(int(match.group(1)))
    return ""


class _Read:
    """One domain's read: its DomainState, or the error the adapter raised reading it (raised again by
    :meth:`state`, where the planner would have read it itself)."""

    __slots__ = ("_state", "_error")

    def __init__(self, state=None, error=None):
        self._state, self._error = state, error

    @classmethod
    def now(cls, adapter, handle):
        try:
            return cls(adapter.read(handle))
        # Any error: state() raises it again, in the planner's thread, where the read would have raised it.
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return cls(error=exc)

    @property
    def lost(self):
        return isinstance(self._error, ConnectionLost)

    def state(self):
        if self._error is not None:
            raise self._error
        return self._state


def _read_ahead(adapter, handles, known=None, depth=READ_AHEAD):
    """Every handle's :class:`_Read`, in order, read by one thread up to ``depth`` domains ahead.

    Planning is pure Python and a read is a libvirt round trip, during which libvirt-python lets go of
    the interpreter: reading the next domains while the planner works on this one takes the reads off
    the run's critical path (parsing there too was measured: no faster, lxml keeps the interpreter).
    The reads are the same ones, in the same order, as when planning read each domain itself;
    ``known[i]``, when given and not None, is the state of ``handles[i]`` already read (by a host-wide
    rule's preparation), which is not read again. After a lost connection nothing more is read.
    Closing the generator stops the reader.
    """
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def reader():
        for i, handle in enumerate(handles):
            state = known[i] if known is not None else None
            read = _Read(state) if state is not None else _Read.now(adapter, handle)
            while not stop.is_set():
                try:
                    ready.put(read, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set() or read.lost:
                return

    thread = threading.Thread(target=reader, name="virtfleet-read", daemon=True)
    thread.start()
    try:
        lost = None
        for _handle in handles:
            read = lost or ready.get()
            if read.lost:
                lost = read   # the reader stopped after it; the run marks the rest not attempted
            yield read
    finally:
        stop.set()
        thread.join()


def _parses(state):
    try:
        state.inactive_root()
    except XMLError:
        return False
    return True


def _same(a, b):
    """Whether two definitions are the same (libvirt's own text, so equal text is the common case)."""
    return a == b or _domxml.canonical(a) == _domxml.canonical(b)


class _Nothing:
    waited = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False


def failure_message(result):
    """A summary message when some domains failed, conflicted, or the connection was lost; else None."""
    bad = [d for d in result["domains"] if d.get("status") in _vocab.FAILING_OUTCOMES or
           (d.get("status") == _vocab.VANISHED and d.get("changed"))]
    if not bad and not result.get("connection_lost"):
        return None
    head = ""
    if result.get("connection_lost"):
        head = "The connection to libvirt was lost: %s " % result.get("connection_error", "")
    listed = " | ".join("%s: %s: %s" % (d["name"], d["status"], d["error"]) for d in bad[:20])
    more = " | ... %d more" % (len(bad) - 20) if len(bad) > 20 else ""
    return "%s%d of %d domain(s) not done: %s%s" % (head, len(bad), len(result["domains"]), listed, more)


def run(adapter, rules, domains=None, exclude=None, **kwargs):
    """Convenience: ``Engine(adapter, rules, **kwargs).run(domains, exclude)``."""
    return Engine(adapter, rules, **kwargs).run(domains, exclude)
